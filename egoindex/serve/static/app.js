// egoindex serve: the search page. Plain JavaScript, no build step, no libraries; every
// text from the store goes in with textContent (never innerHTML), so a transcript cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
// results: the hits of the last search (a moment's timeline marks those of its video);
// videos: uid -> the store's video row; transcripts: uid -> its utterances (fetched once).
// csrf: the session's token (login on), sent as X-CSRF-Token with every POST.
const state = { playing: null, busy: false, results: [], videos: new Map(), transcripts: new Map(), csrf: null };

function fmtTime(s) {
  const m = Math.floor(s / 60);
  const sec = (s - m * 60).toFixed(1).padStart(4, "0");
  return `${m}:${sec}`;
}

function errorText(body, res) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).slice(1).join(".") || "input"}: ${e.msg}`).join("; ");
  }
  return `${res.status} ${res.statusText}`;
}

async function api(url, options) {
  if (options && options.method && options.method !== "GET" && state.csrf) {
    options = { ...options, headers: { ...(options.headers || {}), "X-CSRF-Token": state.csrf } };
  }
  const res = await fetch(url, options);
  if (res.status === 401 && url !== "/health") {  // logged out (expired, or removed): log in again
    window.location.assign("/login");
    throw new Error("not logged in");
  }
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error(errorText(body, res));
  return body;
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function filterParams() {
  const p = new URLSearchParams();
  p.set("level", $("level").value);
  p.set("k", $("k").value || "12");
  if ($("video").value) p.append("video", $("video").value);
  if ($("split").value) p.set("split", $("split").value);
  if ($("speaker").value) p.append("speaker", $("speaker").value);
  if ($("child").value) p.append("child", $("child").value);
  if ($("age-min").value !== "") p.set("age_min", $("age-min").value);
  if ($("age-max").value !== "") p.set("age_max", $("age-max").value);
  if ($("start").value !== "") p.set("start", $("start").value);
  if ($("end").value !== "") p.set("end", $("end").value);
  if ($("min-score").value !== "") p.set("min_score", $("min-score").value);
  if (!$("merge").checked) p.set("merge", "false");
  return p;
}

// One <option> per value, sorted (a filter's choices: splits, speakers, children).
function addOptions(id, values) {
  for (const s of [...values].sort()) {
    const o = document.createElement("option");
    o.value = s;
    o.textContent = s;
    $(id).appendChild(o);
  }
}

async function loadStore() {
  try {
    const h = await api("/health");
    if (h.auth) {  // login on: who is here and what they may see (the store's counts are not for /health)
      const s = await api("/api/session");
      state.csrf = s.csrf_token;
      $("store-info").textContent = `${s.user} (${s.role}) · ${s.scope_text}`;
      $("logout").hidden = false;
    } else {
      $("store-info").textContent = `${h.model} · ${h.rows.videos} videos · ${h.rows.clips} clips · ${h.rows.utterances} utterances`;
    }
    if (!h.classify) $("classify-form").hidden = true;
    if (h.classifier) {  // serve --model: empty labels = the fine-tuned classifier
      $("classify-labels").required = false;
      $("classify-labels").placeholder = `empty: fine-tuned classifier (${h.classifier.join(", ")}); or labels for zero-shot`;
    }
    const videos = await api("/api/videos");
    const splits = new Set();
    const speakers = new Set();
    const children = new Set();
    for (const v of videos) {
      state.videos.set(v.video_uid, v);
      const o = document.createElement("option");
      o.value = v.video_uid;
      o.textContent = v.source;
      $("video").appendChild(o);
      if (v.split) splits.add(v.split);
      for (const s of v.speakers || []) speakers.add(s);
      if (v.child_id) children.add(v.child_id);
    }
    addOptions("split", splits);
    addOptions("speaker", speakers);
    addOptions("child", children);
    document.body.dataset.ready = "1";
  } catch (e) {
    $("store-info").textContent = `cannot reach the store: ${e.message}`;
  }
}

async function runSearch(url, options, what) {
  if (state.busy) return;
  state.busy = true;
  for (const b of document.querySelectorAll("button[type=submit]")) b.disabled = true;
  setStatus(`searching ${what}…`);
  try {
    const data = await api(url, options);
    renderResults(data, what);
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    state.busy = false;
    for (const b of document.querySelectorAll("button[type=submit]")) b.disabled = false;
  }
}

function renderResults(data, what) {
  const grid = $("results");
  grid.replaceChildren();
  state.results = data.hits;
  data.hits.forEach((hit, i) => grid.appendChild(card(hit, i)));
  setStatus(data.count
    ? `${data.count} ${data.level} for ${what} in ${Math.round(data.elapsed_ms)} ms` +
      (data.merged ? " (overlapping hits of a video merged into moments)" : " (raw rows)")
    : `nothing found for ${what} (try fewer filters)`);
}

function card(hit, i) {
  const el = document.createElement("article");
  el.className = "card";
  el.tabIndex = 0;
  el.setAttribute("data-testid", "result-card");
  el.dataset.videoUid = hit.video_uid;
  el.dataset.start = String(hit.start);
  el.dataset.end = String(hit.end);
  el.dataset.rank = String(i + 1);

  const img = document.createElement("img");
  img.className = "thumb";
  img.setAttribute("data-testid", "result-thumb");
  img.loading = "lazy";
  img.alt = `${hit.source} at ${fmtTime(hit.start)}`;
  img.src = hit.thumb;

  const meta = document.createElement("div");
  meta.className = "meta";
  const name = document.createElement("span");
  name.className = "name";
  name.setAttribute("data-testid", "result-name");
  name.textContent = hit.source || hit.video_uid;
  name.title = hit.source;
  const time = document.createElement("span");
  time.className = "time";
  time.setAttribute("data-testid", "result-time");
  time.textContent = hit.start === hit.end ? fmtTime(hit.start) : `${fmtTime(hit.start)}–${fmtTime(hit.end)}`;
  const score = document.createElement("span");
  score.className = "score";
  score.setAttribute("data-testid", "result-score");
  score.textContent = hit.score.toFixed(3);
  meta.append(name, time, score);
  if (hit.speaker) {
    const who = document.createElement("span");
    who.className = "speaker";
    who.setAttribute("data-testid", "result-speaker");
    who.textContent = hit.speaker;
    meta.append(who);
  }
  if (hit.n_rows > 1) {
    const rows = document.createElement("span");
    rows.className = "rows";
    rows.setAttribute("data-testid", "result-rows");
    rows.textContent = `${hit.n_rows} hits`;
    meta.append(rows);
  }

  const text = document.createElement("p");
  text.className = "text";
  text.setAttribute("data-testid", "result-text");
  text.textContent = hit.text || "";
  el.append(img, meta, text);

  const said = (hit.utterances || []).map((u) => u.text).filter((t) => t && t !== hit.text);
  if (said.length) {
    const speech = document.createElement("p");
    speech.className = "speech";
    speech.setAttribute("data-testid", "result-speech");
    speech.textContent = `“${said.join(" … ")}”`;
    el.append(speech);
  }
  el.addEventListener("click", () => openPlayer(hit));
  el.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openPlayer(hit); });
  return el;
}

function caption(hit) {
  $("player-caption").textContent = `${fmtTime(hit.start)}${hit.end > hit.start ? "–" + fmtTime(hit.end) : ""}` +
    (hit.text ? ` · ${hit.text}` : "");
}

// Seek the player to t seconds (once it knows the video's length) and play.
function seekTo(t) {
  const video = $("player-video");
  delete video.dataset.seeked;
  const go = () => {
    video.currentTime = t;
    const p = video.play();
    if (p) p.catch(() => { /* autoplay refused: the controls still work */ });
  };
  if (video.readyState >= 1) go(); else video.addEventListener("loadedmetadata", go, { once: true });
}

function duration(uid) {
  const v = state.videos.get(uid);
  const d = $("player-video").duration;
  return (v && v.duration) || (Number.isFinite(d) ? d : 0) ||
    Math.max(1, ...state.results.filter((h) => h.video_uid === uid).map((h) => h.end));
}

// The per-video timeline: one mark per hit of this query in this video (the open one highlighted).
// A button for a span of the video (a timeline mark, a transcript line): its times ride in data-*.
function timedButton(className, testid, span) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.setAttribute("data-testid", testid);
  b.dataset.start = String(span.start);
  b.dataset.end = String(span.end);
  return b;
}

function renderTimeline(hit) {
  const bar = $("timeline");
  for (const m of bar.querySelectorAll(".mark")) m.remove();
  const total = duration(hit.video_uid);
  bar.dataset.duration = String(total);
  const mine = state.results.filter((h) => h.video_uid === hit.video_uid);
  for (const h of (mine.length ? mine : [hit])) {
    const mark = timedButton("mark", "timeline-mark", h);
    mark.title = `${fmtTime(h.start)}${h.end > h.start ? "–" + fmtTime(h.end) : ""} · ${h.score.toFixed(3)}` +
      (h.text ? ` · ${h.text}` : "");
    mark.setAttribute("aria-label", `play from ${fmtTime(h.start)}`);
    mark.style.left = `${(100 * Math.min(h.start, total)) / total}%`;
    mark.style.width = `max(6px, ${(100 * Math.max(0, Math.min(h.end, total) - h.start)) / total}%)`;
    mark.classList.toggle("current", h.video_uid === hit.video_uid && h.start === hit.start && h.end === hit.end);
    mark.addEventListener("click", () => {
      for (const m of bar.querySelectorAll(".mark")) m.classList.toggle("current", m === mark);
      state.playing = h;
      caption(h);
      markTranscript(h);
      seekTo(h.start);
    });
    bar.appendChild(mark);
  }
}

async function transcriptOf(uid) {
  if (!state.transcripts.has(uid)) {
    state.transcripts.set(uid, api(`/api/videos/${encodeURIComponent(uid)}/transcript`).then((t) => t.utterances));
  }
  return state.transcripts.get(uid);
}

// The transcript beside the player: every utterance of the video with its time; click one to play it.
async function renderTranscript(hit) {
  const list = $("transcript");
  list.replaceChildren();
  list.dataset.video = hit.video_uid;
  delete list.dataset.ready;
  $("transcript-empty").hidden = true;
  let utterances = [];
  try {
    utterances = await transcriptOf(hit.video_uid);
  } catch (e) {
    state.transcripts.delete(hit.video_uid);
    $("transcript-empty").textContent = `cannot load the transcript: ${e.message}`;
    $("transcript-empty").hidden = false;
    return;
  }
  if (list.dataset.video !== hit.video_uid) return; // another video was opened meanwhile
  for (const u of utterances) {
    const li = document.createElement("li");
    const b = timedButton("line", "transcript-line", u);
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = fmtTime(u.start);
    const said = document.createElement("span");
    said.textContent = u.text;
    b.append(when);
    if (u.speaker) {
      const who = document.createElement("span");
      who.className = "speaker";
      who.textContent = u.speaker;
      b.append(who);
    }
    b.append(said);
    b.addEventListener("click", () => seekTo(u.start));
    li.appendChild(b);
    list.appendChild(li);
  }
  $("transcript-empty").textContent = "No speech in this video.";
  $("transcript-empty").hidden = utterances.length > 0;
  markTranscript(state.playing || hit);
  list.dataset.ready = "1";
}

// Highlight the utterances that fall in the open moment.
function markTranscript(hit) {
  for (const b of $("transcript").querySelectorAll(".line")) {
    const inside = +b.dataset.end >= hit.start - 1e-6 && +b.dataset.start <= hit.end + 1e-6;
    b.classList.toggle("in-moment", inside);
  }
}

function followPlayhead() {
  const video = $("player-video");
  const total = +$("timeline").dataset.duration || video.duration || 1;
  $("timeline-head").style.left = `${(100 * Math.min(video.currentTime, total)) / total}%`;
  for (const b of $("transcript").querySelectorAll(".line")) {
    b.classList.toggle("playing", video.currentTime >= +b.dataset.start && video.currentTime < +b.dataset.end);
  }
}

function openPlayer(hit) {
  const video = $("player-video");
  state.playing = hit;
  $("player-title").textContent = hit.source || hit.video_uid;
  caption(hit);
  renderTimeline(hit);
  renderTranscript(hit);
  $("player-error").hidden = true;
  video.dataset.start = String(hit.start);
  delete video.dataset.seeked;
  const seekAndPlay = () => {
    video.currentTime = hit.start;
    const p = video.play();
    if (p) p.catch(() => { /* autoplay refused: the controls still work */ });
  };
  const url = new URL(hit.video, location.href).href;
  if (video.src === url && video.readyState >= 1) {
    seekAndPlay();
  } else {
    video.addEventListener("loadedmetadata", seekAndPlay, { once: true });
    video.src = hit.video;
    video.load();
  }
  if (!$("player").open) $("player").showModal();
}

function closePlayer() {
  const video = $("player-video");
  video.pause();
  if ($("player").open) $("player").close();
}

function initPlayer() {
  const video = $("player-video");
  video.addEventListener("seeked", () => { video.dataset.seeked = String(video.currentTime); followPlayhead(); });
  video.addEventListener("timeupdate", followPlayhead);
  video.addEventListener("loadedmetadata", () => { if (state.playing) renderTimeline(state.playing); });
  video.addEventListener("error", () => {
    const el = $("player-error");
    el.textContent = "This browser cannot play this video file (its container or codec); the search results still apply.";
    el.hidden = false;
  });
  $("player-close").addEventListener("click", closePlayer);
  $("player").addEventListener("close", () => video.pause());
  $("player-like").addEventListener("click", () => {
    const hit = state.playing;
    if (!hit) return;
    const t = Number.isFinite(video.currentTime) && video.currentTime > 0 ? video.currentTime : hit.start;
    const p = filterParams();
    p.set("moment", `${hit.video_uid}@${t.toFixed(2)}`);
    closePlayer();
    runSearch(`/api/search/like?${p}`, undefined, `moments like ${hit.source} @ ${fmtTime(t)}`);
  });
}

function initForms() {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("q").value.trim();
    if (!q) return;
    const p = filterParams();
    p.set("q", q);
    runSearch(`/api/search?${p}`, undefined, `“${q}”`);
  });
  $("image-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = $("image-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("image", file);
    for (const [k, v] of filterParams()) form.append(k, v);
    runSearch("/api/search/image", { method: "POST", body: form }, `the picture ${file.name}`);
  });
  $("classify-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("classify-file").files[0];
    if (!file) return;
    const out = $("classify-result");
    const button = $("classify-btn");
    const form = new FormData();
    form.append("video", file);
    form.append("labels", $("classify-labels").value);
    form.append("top_k", $("classify-topk").value || "5");
    out.textContent = `classifying ${file.name}…`;
    out.classList.remove("error");
    button.disabled = true;
    try {
      renderClassification(await api("/api/classify", { method: "POST", body: form }));
    } catch (e) {
      out.textContent = e.message;
      out.classList.add("error");
    } finally {
      button.disabled = false;
    }
  });
}

function renderClassification(res) {
  const out = $("classify-result");
  out.replaceChildren();
  const head = document.createElement("p");
  head.textContent = `${res.video} (${res.mode}, ${res.model})`;
  const list = document.createElement("ol");
  for (const t of res.top || []) {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "classify-label");
    li.dataset.label = t.label;
    li.textContent = `${t.label} ${(100 * t.prob).toFixed(1)}%`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(2, Math.round(120 * t.prob))}px`;
    li.appendChild(bar);
    list.appendChild(li);
  }
  out.append(head, list);
}

document.addEventListener("DOMContentLoaded", () => {
  initPlayer();
  initForms();
  loadStore();
});

// Log out (login on): end the session on the server, then back to the login page.
$("logout").addEventListener("click", async () => {
  try { await api("/logout", { method: "POST" }); } catch (_) { /* already logged out */ }
  window.location.assign("/login");
});
