"""Redaction of a STORE: delete what blackouts hide from every table, its old versions and files.

What a blackout hides is :class:`egoindex.dataset.blackouts.Blackouts`' rule; the store applies it
to its own rows (so a store built from another copy of the shards is redacted all the same):

* ``frames``: rows whose ``t`` is in a range, whose ``key`` the shards' redaction hid (frames
  captioned by a hidden utterance), or whose caption is a hidden kept utterance's (its text's
  digest, within ``max_gap`` seconds of it: the pairing's limit);
* ``clips``: windows meeting a range or overlapping a hidden kept utterance
  (:meth:`Blackouts.hides_window`);
* ``utterances``: rows overlapping a range (:meth:`Blackouts.hides_span`);
* ``videos``: the row of a wholly blacked-out video; the others get their ``n_frames`` and
  ``n_utterances`` recounted.

Deleting a Lance row only marks it deleted; the bytes stay in the data file, in every older
version and in a transaction file. So each table is deleted from by row id (a predicate with no
content in it: Lance keeps predicates in its transaction files), then compacted with the
deletions materialised (the data files are rewritten without the rows), and once the new
versions are published, every older version is removed with its files
(:func:`purge_old_versions`: ``cleanup_old_versions(older_than=0, delete_unverified=True)``, tags
dropped first: a tag would pin an old version). FAISS ids are table offsets, so after a deletion
every vector index is rebuilt, and the metadata caches are rewritten for the new versions.

Steps are idempotent (each finds what is still there): :mod:`egoindex.redact.run` journals them.
A reader sees the version ``egoindex.json`` names: the old one until :func:`publish` names the new
one. :func:`purge_old_versions` then deletes the old version's files, so a reader that opened the
store before the redaction and still reads fails with a missing file rather than see the old rows
(``egoindex serve`` notices the change before its next request and reopens the store:
:mod:`egoindex.serve.live`; docs/reliability.md).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from egoindex.core import failpoints
from egoindex.dataset.blackouts import Blackouts, HiddenUtterance, utterance_digest
from egoindex.store import ann
from egoindex.store.filters import in_list
from egoindex.store.index import rebuild_index
from egoindex.store.layout import StoreLayout, StoreMeta
from egoindex.store.schema import TABLES, VECTOR_TABLES
from egoindex.store.writer import open_dataset, record_tables, write_meta

#: Row ids per Lance delete (one predicate each).
DELETE_CHUNK = 4096
#: The columns each table's rule reads.
RULE_COLUMNS = {"frames": ["video_uid", "t", "key", "text"], "clips": ["video_uid", "start", "end"],
                "utterances": ["video_uid", "start", "end"], "videos": ["video_uid"]}


def hidden_rows(table: str, rows: list[dict[str, Any]], blackouts: Blackouts, hidden_keys: frozenset[str] = frozenset(),
                hidden_utterances: Iterable[HiddenUtterance] = (), max_gap: float = 1.0) -> list[bool]:
    """Which of a table's ``rows`` (:data:`RULE_COLUMNS`) the blackouts hide (module docstring)."""
    kept: dict[str, list[HiddenUtterance]] = {}
    for u in hidden_utterances:
        if u.kept:
            kept.setdefault(u.video_uid, []).append(u)
    out = []
    for r in rows:
        uid = r["video_uid"]
        if not blackouts.of(uid):
            out.append(False)
        elif table == "frames":
            t, text = float(r["t"]), (r.get("text") or "").strip()
            out.append(blackouts.hides_time(uid, t) or r.get("key") in hidden_keys or bool(text) and any(
                u.digest == utterance_digest(text) and u.start - max_gap <= t <= u.end + max_gap
                for u in kept.get(uid, ())))
        elif table == "clips":
            out.append(blackouts.hides_window(uid, float(r["start"]), float(r["end"]),
                                              [(u.start, u.end) for u in kept.get(uid, ())]))
        elif table == "utterances":
            out.append(blackouts.hides_span(uid, float(r["start"]), float(r["end"])))
        else:  # videos: only a wholly blacked-out video loses its row
            out.append(blackouts.whole(uid))
    return out


def store_hidden_utterances(layout: StoreLayout, blackouts: Blackouts) -> list[HiddenUtterance]:
    """The store's own utterances that the blackouts hide (spans and text digests), to match frame
    captions against beside the transcripts' (a store built from another copy of the shards)."""
    ds = open_dataset(layout, "utterances")
    if ds is None or not blackouts.uids:
        return []
    rows = ds.to_table(columns=["video_uid", "start", "end", "text"], filter=in_list("video_uid", blackouts.uids))
    return [HiddenUtterance(r["video_uid"], float(r["start"]), float(r["end"]), True, utterance_digest(r["text"] or ""))
            for r in rows.to_pylist() if blackouts.hides_span(r["video_uid"], float(r["start"]), float(r["end"]))]


def hidden_row_ids(layout: StoreLayout, table: str, blackouts: Blackouts, hidden_keys: frozenset[str] = frozenset(),
                   hidden_utterances: Iterable[HiddenUtterance] = (), max_gap: float = 1.0) -> list[int]:
    """The Lance row ids of ``table``'s rows (latest version) that the blackouts hide."""
    ds = open_dataset(layout, table)
    if ds is None or not blackouts.uids:
        return []
    cols = [c for c in RULE_COLUMNS[table] if c in ds.schema.names]
    got = ds.to_table(columns=cols, filter=in_list("video_uid", blackouts.uids), with_row_id=True)
    mask = hidden_rows(table, got.drop_columns(["_rowid"]).to_pylist(), blackouts, hidden_keys, hidden_utterances,
                       max_gap)
    return [int(i) for i, m in zip(got["_rowid"].to_pylist(), mask) if m]


def delete_hidden(layout: StoreLayout, table: str, blackouts: Blackouts, hidden_keys: frozenset[str] = frozenset(),
                  hidden_utterances: Iterable[HiddenUtterance] = (), max_gap: float = 1.0) -> int:
    """Delete ``table``'s hidden rows (by row id) and compact the table so that its data files no
    longer hold them; returns the rows deleted now (0 on a rerun). A killed run may leave rows
    marked deleted but not compacted: the compaction runs whatever the count."""
    ids = hidden_row_ids(layout, table, blackouts, hidden_keys, hidden_utterances, max_gap)
    for lo in range(0, len(ids), DELETE_CHUNK):
        ds = open_dataset(layout, table)
        ds.delete(f"_rowid IN ({', '.join(map(str, ids[lo:lo + DELETE_CHUNK]))})")  # type: ignore[union-attr]
    if ids:
        failpoints.hit("redact-table-deleted")
    compact(layout, table)
    return len(ids)


def compact(layout: StoreLayout, table: str) -> None:
    """Rewrite every fragment that has deleted rows (insertion order kept, so offsets stay in
    table order for the indexes rebuilt afterwards)."""
    ds = open_dataset(layout, table)
    if ds is not None and any(f.deletion_file() is not None for f in ds.get_fragments()):
        ds.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)


def recount_videos(layout: StoreLayout, blackouts: Blackouts) -> int:
    """The ``videos`` rows of partly blacked-out videos get ``n_frames`` / ``n_utterances`` from
    what their tables hold now (the build's counts); returns how many rows changed. Idempotent."""
    ds = open_dataset(layout, "videos")
    if ds is None or not blackouts.uids:
        return 0
    rows = ds.to_table(columns=["video_uid", "n_frames", "n_utterances"],
                       filter=in_list("video_uid", blackouts.uids)).to_pylist()
    changed = 0
    for r in rows:
        counts = {}
        for col, table in (("n_frames", "frames"), ("n_utterances", "utterances")):
            t = open_dataset(layout, table)
            counts[col] = int(t.count_rows(filter=in_list("video_uid", [r["video_uid"]]))) if t is not None else 0
        if any(int(r[c] or 0) != v for c, v in counts.items()):
            ds.update({c: str(v) for c, v in counts.items()}, where=in_list("video_uid", [r["video_uid"]]))
            ds = open_dataset(layout, "videos")
            changed += 1
    compact(layout, "videos")
    return changed


def rebuild_indexes(layout: StoreLayout, target_recall: float = 0.95) -> dict[str, dict[str, Any]]:
    """Rebuild every vector table's FAISS index from its rows (an index over an emptied table is
    removed), keeping a factory that was asked for rather than chosen by size."""
    out = {}
    for table in VECTOR_TABLES:
        got = ann.load_index(layout.indexes, table)
        factory = None
        if got is not None and got[1].factory != ann.choose_factory(got[1].ntotal, got[1].dim):
            factory = got[1].factory  # an --index choice
        del got
        out[table] = rebuild_index(layout, table, factory, target_recall)
    return out


def publish(layout: StoreLayout) -> dict[str, int]:
    """The metadata caches for the tables' current versions (older caches deleted: they hold the
    old rows' text), then ``egoindex.json`` naming those versions: from here readers see the
    redacted store. Returns rows per table."""
    meta = StoreMeta.read(layout.root)
    rows, versions = record_tables(layout)
    write_meta(layout, replace(meta, rows=rows, table_versions=versions,
                               updated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))
    return rows


def purge_old_versions(layout: StoreLayout, tables: Iterable[str] = TABLES) -> dict[str, int]:
    """Remove every version but the latest of each table, with the data, deletion, index and
    transaction files only they use (tags dropped first); returns bytes removed per table."""
    out = {}
    for table in tables:
        ds = open_dataset(layout, table)
        if ds is None:
            continue
        for name in list(ds.tags.list()):
            ds.tags.delete(name)
        stats = ds.cleanup_old_versions(older_than=dt.timedelta(0), delete_unverified=True,
                                        error_if_tagged_old_versions=False)
        out[table] = int(stats.bytes_removed)
    return out


def drop_thumbnails(layout: StoreLayout) -> bool:
    """Delete ``STORE/_thumbs`` (``egoindex serve``'s disk cache; it refills from the videos on
    demand): whether there was one. A running server forgets its in-memory copies when it notices
    the redaction (:mod:`egoindex.serve.live`)."""
    if not layout.thumbs.exists():
        return False
    shutil.rmtree(layout.thumbs)
    return True


def table_counts(layout: StoreLayout, tables: Iterable[str] = TABLES) -> Mapping[str, int]:
    """Rows of each table's latest version (0 for a table never written)."""
    return {t: (int(ds.count_rows()) if (ds := open_dataset(layout, t)) is not None else 0) for t in tables}


def unpublished_tables(layout: StoreLayout) -> list[str]:
    """Tables whose latest Lance version is newer than the one ``egoindex.json`` names: a build
    (or ``--append``) is running or was killed after a commit. A redaction would publish its half
    of the work, so it is refused until the build has finished."""
    meta = StoreMeta.read(layout.root)
    out = []
    for table in TABLES:
        ds = open_dataset(layout, table)
        if ds is not None and ds.version != meta.table_versions.get(table, ds.version):
            out.append(table)
    return out


def reports_naming(layout: StoreLayout, uids: Iterable[str]) -> list[Path]:
    """The files under ``STORE/bench`` (benchmark reports: some quote utterances and moments)
    that name one of ``uids``."""
    return files_naming(layout.bench, uids)


def files_naming(path: Path, uids: Iterable[str]) -> list[Path]:
    """The file ``path``, or the files under the folder ``path``, whose bytes hold one of
    ``uids`` (sorted; none when ``path`` is not there)."""
    needles = [u.encode("utf-8") for u in uids]
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    return [p for p in files if needles and any(n in p.read_bytes() for n in needles)]
