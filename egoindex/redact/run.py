"""``egoindex redact SHARDS_DIR STORE``: remove blacked-out ranges from everything egoindex wrote.

A family may ask for a stretch of a recording to be removed. What a range hides is one rule
(:class:`egoindex.dataset.blackouts.Blackouts`); this module is the orchestration that applies
it everywhere, resumably:

1. **Plan** (:func:`plan`): resolve the videos (uid or source path; an unknown one is refused
   unless ``allow_unknown``), read the affected shards, transcripts and records once
   (:func:`egoindex.dataset.redact.plan_shards`) and write ``SHARDS_DIR/_redactions/journal.json``:
   the ranges, who asked, and the list of steps with a ``done`` flag each. From then on ``ingest``
   and ``build`` refuse the SHARDS_DIR until the redaction has finished.
2. **Steps** (:func:`execute`), each idempotent, each marked done in the journal after it ran:
   record the blackouts (SHARDS_DIR and STORE: from here on ingest and build never bring the
   ranges back); rewrite each affected shard, staged tar and transcript; update the pack and video
   records and the summaries; delete the rows from every STORE table and compact it; rebuild the
   FAISS indexes; publish the new versions (metadata caches, ``egoindex.json``); remove every old
   table version and its files; drop the thumbnail cache; with ``delete_source``, blank the range
   in the raw video (:func:`egoindex.media.blank.blank_ranges`); append ``finished`` to both
   redaction logs and remove the journal.

Killed at any point, the same command (or any ``egoindex redact`` on that SHARDS_DIR) first
finishes the journal's redaction: a step that ran but was not yet marked runs again and finds
nothing left to do. Kill points: ``redact-before-mark`` (a step done, not yet marked),
``redact-step-done`` (marked) and ``redact-table-deleted`` (rows deleted, the table not yet
compacted). Two redactions of one SHARDS_DIR never run at once (a lock file).

The log (``_redactions/log.jsonl`` in both folders) says what range, when and by whom (``by``,
default the OS user), with counts; the journal holds frame keys and text digests while it runs,
and is deleted when the redaction finishes. Neither ever holds a caption, a frame or a vector.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egoindex.core import failpoints
from egoindex.dataset import redact as shards_redact
from egoindex.dataset.blackouts import (Blackout, Blackouts, HiddenUtterance, add_blackouts, append_log,
                                        read_blackouts, read_journal, read_log, redaction_lock, redactions_dir,
                                        remove_journal, write_journal)
from egoindex.dataset.layout import ShardsLayout, read_ingest_config, read_manifest, read_video_record, videos_dir
from egoindex.dataset.shards import list_pair_shards
from egoindex.errors import RedactionError, StoreError
from egoindex.media.blank import blank_ranges
from egoindex.store import redact as store_redact
from egoindex.store.filters import in_list
from egoindex.store.layout import StoreLayout, StoreMeta
from egoindex.store.writer import open_dataset

#: The STORE tables in the order they are redacted (frames before utterances: the frames' rule
#: matches captions against the hidden utterances the utterances table still holds).
STORE_TABLES = ("frames", "clips", "utterances", "videos")


@dataclass
class RedactRequest:
    """What to redact: ``blackouts`` (their ``video_uid`` may also be a video's source path,
    relative to the videos folder, as the manifest names it) in ``shards`` and ``store``."""

    shards: Path
    store: Path | None
    blackouts: list[Blackout] = field(default_factory=list)
    by: str | None = None
    delete_source: bool = False
    allow_unknown: bool = False


@dataclass
class RedactSummary:
    """What one redaction did (the CLI prints it; the log records the same counts)."""

    id: str
    ranges: list[dict[str, Any]]
    by: str
    resumed: bool = False
    removed: dict[str, int] = field(default_factory=dict)
    store_removed: dict[str, int] = field(default_factory=dict)
    shards_rewritten: int = 0
    shards_removed: int = 0
    bytes_purged: int = 0
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def who(by: str | None) -> str:
    """Who redacts: ``by`` when given, else the OS user."""
    if by and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container): the uid is what there is
        return f"uid:{os.getuid()}"


def known_videos(shards: Path, store: Path | None) -> tuple[set[str], dict[str, str]]:
    """The video uids SHARDS_DIR and STORE know, and ``{source path: uid}`` from the manifest and
    the store's videos table."""
    uids: set[str] = set()
    by_source: dict[str, str] = {}
    lay = ShardsLayout(shards)
    if lay.manifest.is_file():
        for r in read_manifest(lay):
            uids.add(r["video_uid"])
            if r.get("source"):
                by_source[r["source"]] = r["video_uid"]
    if lay.videos.is_dir():
        uids |= {p.stem for p in lay.videos.glob("*.json")}
    if store is not None:
        ds = open_dataset(StoreLayout(store), "videos")
        if ds is not None:
            for r in ds.to_table(columns=["video_uid", "source"]).to_pylist():
                uids.add(r["video_uid"])
                by_source.setdefault(r["source"], r["video_uid"])
    return uids, by_source


def resolve(req: RedactRequest) -> list[Blackout]:
    """The request's blackouts with each video named by its uid; an unknown video is refused
    (a mistyped uid must not pass for a done redaction) unless ``allow_unknown``: then it is
    recorded, and ingest leaves it out when it comes."""
    uids, by_source = known_videos(req.shards, req.store)
    out, unknown = [], []
    for b in req.blackouts:
        uid = b.video_uid if b.video_uid in uids else by_source.get(b.video_uid)
        if uid is None:
            unknown.append(b.video_uid)
            uid = b.video_uid
        out.append(Blackout(uid, b.start, b.end))
    if unknown and not req.allow_unknown:
        raise RedactionError(f"unknown video(s) {', '.join(sorted(set(unknown))[:5])}: neither {req.shards} nor the "
                             "store has them (give the video_uid of manifest.csv, or its source path); "
                             "--allow-unknown records the blackout anyway, for videos not ingested yet")
    return out


def check_store(store: Path) -> StoreLayout:
    layout = StoreLayout(store)
    try:
        StoreMeta.read(layout.root)
    except StoreError as e:
        raise RedactionError(f"{e}; a redaction needs a finished store (or pass its SHARDS_DIR only)") from None
    busy = store_redact.unpublished_tables(layout)
    if busy:
        raise RedactionError(f"{store}: the {', '.join(busy)} table(s) have versions newer than egoindex.json names "
                             "(a build is running or was killed): finish it (rerun `egoindex build`), then redact")
    return layout


def plan(req: RedactRequest, ranges: list[Blackout]) -> dict[str, Any]:
    """The journal of a new redaction of ``ranges`` (written; logged as ``started``)."""
    if req.store is not None:
        check_store(req.store)
    shards = Path(req.shards)
    merged = read_blackouts(shards).union(ranges)
    if req.store is not None:
        merged = merged.union(read_blackouts(req.store))
    uids = sorted({b.video_uid for b in ranges})
    sp = shards_redact.plan_shards(shards, merged, uids)
    max_gap = float(read_ingest_config(shards).get("max_gap", 1.0))
    if req.store is not None:  # what the store loses, counted before anything changes (the summary's figures)
        layout = StoreLayout(req.store)
        keys = frozenset(k for ks in sp["hidden_keys"].values() for k in ks)
        utts = [HiddenUtterance.from_json(u) for u in sp["hidden_utterances"]]
        sp["store_removed"] = {t: len(store_redact.hidden_row_ids(
            layout, t, merged, keys, utts + (store_redact.store_hidden_utterances(layout, merged) if t == "frames"
                                             else []), max_gap)) for t in STORE_TABLES}
    steps = ["blackouts", *(f"shard:{n}" for n in sp["shards"]), *(f"staging:{u}" for u in sp["staged"]),
             *(f"transcript:{u}" for u in sp["transcripts"]), "packs", "records", "summaries"]
    if req.store is not None:
        steps += [*(f"store:{t}" for t in STORE_TABLES), "store:indexes", "store:publish", "store:purge",
                  "store:thumbnails", "store:reports"]
    if req.delete_source:
        steps += [f"source:{u}" for u in uids]
    steps += ["strays", "log"]
    journal = {"id": dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3),
               "by": who(req.by), "started_at": _now(), "shards": str(shards.resolve()),
               "store": str(Path(req.store).resolve()) if req.store is not None else None,
               "ranges": [b.to_json() for b in ranges], "delete_source": bool(req.delete_source),
               "max_gap": max_gap, "plan": sp,
               "steps": [{"name": s, "done": False} for s in steps], "results": {}}
    write_journal(shards, journal)
    entry = {"event": "started", "id": journal["id"], "at": journal["started_at"], "by": journal["by"],
             "ranges": journal["ranges"], "store": journal["store"], "delete_source": journal["delete_source"]}
    for root in (shards, req.store):
        if root is not None:
            append_log(root, entry)
    return journal


def execute(journal: dict[str, Any], resumed: bool = False, by: str | None = None) -> RedactSummary:
    """Run the journal's steps that are not done yet, marking each; then remove the journal."""
    t0 = time.perf_counter()
    shards = Path(journal["shards"])
    store = StoreLayout(journal["store"]) if journal.get("store") else None
    if resumed:
        entry = {"event": "resumed", "id": journal["id"], "at": _now(), "by": who(by)}
        for root in (shards, store.root if store else None):
            if root is not None:
                append_log(root, entry)
    journal.setdefault("results", {})
    for step in journal["steps"]:
        if step["done"]:
            continue
        do_step(journal, step["name"], shards, store)
        failpoints.hit("redact-before-mark")
        step["done"] = True
        write_journal(shards, journal)
        failpoints.hit("redact-step-done")
    remove_journal(shards)
    return summarise(journal, resumed, time.perf_counter() - t0)


def do_step(journal: dict[str, Any], name: str, shards: Path, store: StoreLayout | None) -> None:
    """One step of the journal (idempotent: run twice, the second finds nothing left to do); what
    the summary reports goes into ``journal["results"]``."""
    sp, results = journal["plan"], journal["results"]
    ranges = [Blackout.from_json(b) for b in journal["ranges"]]
    keys = frozenset(k for ks in sp["hidden_keys"].values() for k in ks)
    utts = [HiddenUtterance.from_json(u) for u in sp["hidden_utterances"]]
    bl = read_blackouts(shards).union(ranges)
    if store is not None:
        bl = bl.union(read_blackouts(store.root))
    kind, _, arg = name.partition(":")
    if name == "blackouts":
        add_blackouts(shards, ranges)
        if store is not None:
            add_blackouts(store.root, ranges)
    elif kind == "shard":
        rw = shards_redact.redact_shard(shards, arg, bl, keys)
        if rw.changed or name not in results:  # a rerun after a kill keeps the first run's facts
            results[name] = {"size": rw.size, "dropped": rw.dropped, "damaged": rw.damaged}
    elif kind == "staging":
        shards_redact.redact_staged(shards, arg, bl)
    elif kind == "transcript":
        shards_redact.redact_transcript(shards, arg, bl)
    elif name == "packs":
        shards_redact.update_pack_records(shards, sp)
    elif name == "records":
        shards_redact.update_video_records(shards, sp)
    elif name == "summaries":
        shards_redact.publish(shards, sp)
    elif kind == "source":
        results[name] = delete_source(shards, store, arg, bl)
    elif name == "strays":
        uids = sorted({b.video_uid for b in ranges})
        results[name] = [str(p) for p in stray_files(shards, store, uids)]
    elif name == "log":
        finish_log(journal, shards, store)
    elif store is None:
        raise RedactionError(f"the journal's step {name} needs the store, which the journal does not name")
    elif arg in STORE_TABLES:
        hidden = utts + store_redact.store_hidden_utterances(store, bl) if arg == "frames" else utts
        store_redact.delete_hidden(store, arg, bl, keys, hidden, float(journal.get("max_gap", 1.0)))
        if arg == "videos":
            store_redact.recount_videos(store, bl)
    elif name == "store:indexes":
        store_redact.rebuild_indexes(store)
    elif name == "store:publish":
        store_redact.publish(store)
    elif name == "store:purge":
        results[name] = results.get(name, 0) + sum(store_redact.purge_old_versions(store).values())
    elif name == "store:thumbnails":
        store_redact.drop_thumbnails(store)
    elif name == "store:reports":
        gone = store_redact.reports_naming(store, sorted({b.video_uid for b in ranges}))
        for p in gone:
            p.unlink()
        results[name] = sorted({*results.get(name, []), *(str(p.relative_to(store.root)) for p in gone)})
    else:
        raise RedactionError(f"unknown step {name!r} in {shards}/_redactions/journal.json (written by another "
                             "egoindex version?): finish it with that version")


def stray_files(shards: Path, store: StoreLayout | None, uids: list[str]) -> list[Path]:
    """Files under SHARDS_DIR or STORE that egoindex did not write (notes, a server's logs, an
    export saved inside) and that name one of ``uids``: a redaction cannot know what they hold, so
    it names them (summary and log) for a person to check."""
    lay = ShardsLayout(shards)
    managed = {lay.work, lay.transcripts, lay.uncaptioned, lay.clips, lay.sizes, lay.manifest, lay.shards_csv,
               lay.participants, redactions_dir(shards), *list_pair_shards(lay)}
    roots = [(shards, managed)]
    if store is not None:
        roots.append((store.root, {store.meta, store.lance, store.indexes, store.cache, store.work, store.encoders,
                                   store.thumbs, store.redactions, store.bench}))
    out: list[Path] = []
    for root, known in roots:
        for entry in sorted(Path(root).iterdir()):
            if entry not in known:
                out += store_redact.files_naming(entry, uids)
    return out


def finish_log(journal: dict[str, Any], shards: Path, store: StoreLayout | None) -> None:
    """Append the ``finished`` event to both logs (once: a rerun after a kill does not repeat it).
    The rewritten shards' sizes are in it: a build accepts a shard it embedded at that size."""
    s = summarise(journal, False, 0.0)
    res = journal["results"]
    entry = {"event": "finished", "id": journal["id"], "at": _now(), "by": journal["by"], "ranges": journal["ranges"],
             "store": journal.get("store"), "removed": s.removed, "store_removed": s.store_removed,
             "shards": {k.partition(":")[2]: v["size"] for k, v in journal["results"].items()
                        if k.startswith("shard:") and v["size"]},
             "shards_removed": sorted(k.partition(":")[2] for k, v in journal["results"].items()
                                      if k.startswith("shard:") and not v["size"]),
             "sources": s.sources, "reports_removed": res.get("store:reports", []),
             "unchecked_files": res.get("strays", [])}
    for root in (shards, store.root if store else None):
        if root is not None and not any(e.get("event") == "finished" and e.get("id") == journal["id"]
                                        for e in read_log(root)):
            append_log(root, entry)


def summarise(journal: dict[str, Any], resumed: bool, seconds: float) -> RedactSummary:
    res = journal.get("results", {})
    plan_shards = journal["plan"]["shards"]
    warnings = [f"{k.partition(':')[2]}: {v['damaged']} (the unreadable end was dropped)"
                for k, v in res.items() if k.startswith("shard:") and v.get("damaged")]
    warnings += [f"{p} names a redacted video and egoindex did not write it: check it, and delete what it holds "
                 "of the range" for p in res.get("strays", [])]
    warnings += [f"benchmark report STORE/{p} named a redacted video: deleted (rerun the benchmark)"
                 for p in res.get("store:reports", [])]
    return RedactSummary(
        id=journal["id"], ranges=journal["ranges"], by=journal["by"], resumed=resumed,
        removed=dict(journal["plan"]["removed"]),
        store_removed=dict(journal["plan"].get("store_removed") or {}),
        shards_rewritten=sum(1 for v in plan_shards.values() if v.get("dropped") and v["count"]),
        shards_removed=sum(1 for v in plan_shards.values() if v.get("dropped") and not v["count"]),
        bytes_purged=int(res.get("store:purge", 0)),
        sources=[str(v) for k, v in res.items() if k.startswith("source:") and v],
        warnings=warnings, seconds=round(seconds, 2))


def source_path(shards: Path, store: StoreLayout | None, uid: str) -> Path | None:
    """The raw video file of ``uid``: the ingest's videos folder and the video's record, else the
    store's ``videos_root`` and its videos row; None when neither knows it."""
    rec = read_video_record(shards, uid)
    root = videos_dir(shards)
    if rec is not None and root is not None and rec.get("source"):
        return root / rec["source"]
    if store is not None:
        meta = StoreMeta.read(store.root)
        ds = open_dataset(store, "videos")
        if meta.videos_root and ds is not None:
            rows = ds.to_table(columns=["source"], filter=in_list("video_uid", [uid])).to_pylist()
            if rows:
                return Path(meta.videos_root) / rows[0]["source"]
    return None


def delete_source(shards: Path, store: StoreLayout | None, uid: str, bl: Blackouts) -> str:
    """Blank the video's blacked-out ranges in its raw file (a wholly blacked-out video's file is
    deleted); returns the file's path ("" when it is already gone). Idempotent in effect."""
    path = source_path(shards, store, uid)
    if path is None:
        raise RedactionError(f"--delete-source: where the raw file of {uid} is is not recorded (no "
                             "_ingest/source.json and no store videos_root); delete it by hand")
    if not path.is_file():
        return ""
    if bl.whole(uid):
        path.unlink()
    else:
        blank_ranges(path, [(float(b.start), b.end) for b in bl.of(uid)])
    return str(path)


def run(req: RedactRequest) -> list[RedactSummary]:
    """Finish an unfinished redaction of ``req.shards`` if there is one, then redact ``req``
    (unless it is that same redaction); returns a summary per redaction run."""
    shards = Path(req.shards)
    if not shards.is_dir():
        raise RedactionError(f"SHARDS_DIR not found: {shards}")
    if req.store is not None and not Path(req.store).is_dir():
        raise RedactionError(f"STORE not found: {req.store}")
    out = []
    with redaction_lock(shards):
        pending = read_journal(shards)
        ranges = resolve(req) if req.blackouts else []
        if pending is not None:
            out.append(execute(pending, resumed=True, by=req.by))
            if sorted(pending["ranges"], key=str) == sorted((b.to_json() for b in ranges), key=str):
                return out  # the rerun of the killed command: done
        if ranges:
            out.append(execute(plan(req, ranges)))
    return out
