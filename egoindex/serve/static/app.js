// egoindex serve: the search page. Plain JavaScript, no build step, no libraries; every
// text from the store goes in with textContent (never innerHTML), so a transcript cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { playing: null, busy: false };

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
  const res = await fetch(url, options);
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
  if ($("start").value !== "") p.set("start", $("start").value);
  if ($("end").value !== "") p.set("end", $("end").value);
  return p;
}

async function loadStore() {
  try {
    const h = await api("/health");
    $("store-info").textContent = `${h.model} · ${h.rows.videos} videos · ${h.rows.clips} clips · ${h.rows.utterances} utterances`;
    if (!h.classify) $("classify-form").hidden = true;
    const videos = await api("/api/videos");
    const splits = new Set();
    for (const v of videos) {
      const o = document.createElement("option");
      o.value = v.video_uid;
      o.textContent = v.source;
      $("video").appendChild(o);
      if (v.split) splits.add(v.split);
    }
    for (const s of [...splits].sort()) {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = s;
      $("split").appendChild(o);
    }
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
  data.hits.forEach((hit, i) => grid.appendChild(card(hit, i)));
  setStatus(data.count
    ? `${data.count} ${data.level} for ${what} in ${Math.round(data.elapsed_ms)} ms`
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

  const text = document.createElement("p");
  text.className = "text";
  text.setAttribute("data-testid", "result-text");
  text.textContent = hit.text || "";

  el.append(img, meta, text);
  el.addEventListener("click", () => openPlayer(hit));
  el.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openPlayer(hit); });
  return el;
}

function openPlayer(hit) {
  const video = $("player-video");
  state.playing = hit;
  $("player-title").textContent = hit.source || hit.video_uid;
  $("player-caption").textContent = `${fmtTime(hit.start)}${hit.end > hit.start ? "–" + fmtTime(hit.end) : ""}` +
    (hit.text ? ` · ${hit.text}` : "");
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
  video.addEventListener("seeked", () => { video.dataset.seeked = String(video.currentTime); });
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
