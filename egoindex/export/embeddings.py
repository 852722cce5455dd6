"""``egoindex export embeddings``: a store's vectors in two standard forms.

* clip-retrieval's embeddings folder (:mod:`egoindex.export.clip_retrieval`): every row of one table,
  streamed in batches, for ``autofaiss build_index`` and ``clip_retrieval index/back``;
* a TensorBoard projector folder (:mod:`egoindex.export.projector`): a seeded sample of at most
  ``max_points`` rows with their thumbnails.

What is the "image" and what the "text" of a row (clip-retrieval pairs them row by row):

* ``frames``: img_emb = the frame's vector; caption = the utterance paired with the frame at ingest;
* ``clips``: img_emb = the clip's pooled vector; caption = the overlapping utterances, joined;
* ``utterances``: text only (no img_emb), text_emb = the utterance's vector.

The store holds text vectors only for utterances, so a caption's text vector is, in this order: the
stored vector of an utterance of the same video with exactly that text (the store's own text tower
made it), else (``text="auto"``) the caption embedded now by the store's model, else a zero row. The
metadata column ``text_source`` says which (``utterance`` / ``model`` / ``none``); an empty caption
is always a zero row (``none``): it has no text to embed. ``text="none"`` writes no text_emb at all.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from egoindex.core.fsutil import write_json
from egoindex.core.progress import counting
from egoindex.dataset.layout import ShardsLayout
from egoindex.dataset.shards import MemberRef, TarReaders, index_tar
from egoindex.errors import ExportError
from egoindex.export.clip_retrieval import ClipRetrievalWriter
from egoindex.export.projector import max_points_for, write_projector
from egoindex.store.filters import Filters
from egoindex.store.schema import vectors_of
from egoindex.store.store import Store

LEVELS = ("frames", "clips", "utterances")
FORMATS = ("clip-retrieval", "projector")
TEXT_MODES = ("auto", "store", "none")
SUMMARY_FILE = "embeddings_summary.json"
#: Rows read from the store at a time (the clip-retrieval stream never holds more).
READ_BATCH = 8192

_COLUMNS = {
    "frames": ["video_uid", "t", "split", "text", "shard", "key"],
    "clips": ["video_uid", "start", "end", "split", "text"],
    "utterances": ["utterance_id", "video_uid", "start", "end", "split", "text"],
}


def _times(level: str, cols: dict[str, list[Any]]) -> tuple[list[float], list[float]]:
    if level == "frames":
        return cols["t"], cols["t"]
    return cols["start"], cols["end"]


class TextVectors:
    """Paired text vectors for captions (the rule in the module docstring)."""

    def __init__(self, store: Store, mode: str) -> None:
        self.store, self.mode = store, mode
        self.counts = {"utterance": 0, "model": 0, "none": 0}
        ut = store.table("utterances").to_lance()
        self.utterances = ut
        got = ut.to_table(columns=["video_uid", "text"])
        # (video, text) -> the first utterance offset with it (same text, same tower: the same vector)
        self.offset: dict[tuple[str, str], int] = {}
        for i, key in enumerate(zip(got["video_uid"].to_pylist(), got["text"].to_pylist())):
            self.offset.setdefault(key, i)

    def __call__(self, uids: list[str], texts: list[str]) -> tuple[np.ndarray, list[str]]:
        n, dim = len(texts), self.store.dim
        vecs = np.zeros((n, dim), np.float32)
        sources = ["none"] * n
        hits = [(i, self.offset.get((u, t))) for i, (u, t) in enumerate(zip(uids, texts)) if t]
        stored = [(i, o) for i, o in hits if o is not None]
        if stored:
            offs = [o for _, o in stored]
            uniq, inv = np.unique(np.asarray(offs, np.int64), return_inverse=True)
            got = vectors_of(self.utterances.take(uniq.tolist(), columns=["vector"]).column(0), dim)
            vecs[[i for i, _ in stored]] = got[inv]
            for i, _ in stored:
                sources[i] = "utterance"
        missing = [i for i, o in hits if o is None]
        if missing and self.mode == "auto":
            uniq_texts = sorted({texts[i] for i in missing})
            emb = dict(zip(uniq_texts, self.store.embedder.encode_texts(uniq_texts)))
            for i in missing:
                vecs[i] = emb[texts[i]]
                sources[i] = "model"
        for s in sources:
            self.counts[s] += 1
        return vecs, sources


def _video_urls(store: Store) -> dict[str, str]:
    """``file://`` URIs of the source videos (empty when the store does not know where they are)."""
    out: dict[str, str] = {}
    for uid in store.videos:
        try:
            out[uid] = store.video_path(uid).resolve().as_uri()
        except Exception:  # no videos_root: the url column stays empty
            out[uid] = ""
    return out


def _metadata(level: str, cols: dict[str, list[Any]], offsets: range | list[int], urls: dict[str, str],
              sources: list[str] | None, image: bool) -> pa.Table:
    """clip-retrieval's columns (image_path, caption) first, then egoindex's."""
    starts, ends = _times(level, cols)
    n = len(cols["video_uid"])
    data: dict[str, Any] = {}
    if image:
        if level == "frames":
            # the tar member, relative to SHARDS_DIR (uncaptioned shards live in a subfolder)
            rel = ShardsLayout(".")
            data["image_path"] = [f"{rel.shard(s).as_posix()}/{k}.jpg" for s, k in zip(cols["shard"], cols["key"])]
        else:
            data["image_path"] = [urls.get(u, "") for u in cols["video_uid"]]
    data["caption"] = cols["text"]
    frag = [f"#t={s:g}" if s == e else f"#t={s:g},{e:g}" for s, e in zip(starts, ends)]
    data["url"] = [urls.get(u, "") + f if urls.get(u) else "" for u, f in zip(cols["video_uid"], frag)]
    data["video_uid"] = cols["video_uid"]
    data["start"] = pa.array(starts, pa.float64())
    data["end"] = pa.array(ends, pa.float64())
    data["split"] = cols["split"]
    data["level"] = [level] * n
    data["row"] = pa.array(list(offsets), pa.int64())
    if level == "utterances":
        data["utterance_id"] = cols["utterance_id"]
    if sources is not None:
        data["text_source"] = sources
    return pa.table(data)


def _batches(store: Store, level: str) -> Iterator[tuple[int, dict[str, list[Any]], np.ndarray]]:
    """(first offset, metadata columns, float32 vectors) of the table in row order, a batch at a time."""
    ds = store.table(level).to_lance()
    start = 0
    for b in ds.to_batches(columns=_COLUMNS[level] + ["vector"], batch_size=READ_BATCH):
        cols = {c: b.column(c).to_pylist() for c in _COLUMNS[level]}
        yield start, cols, vectors_of(b.column("vector"), store.dim)
        start += b.num_rows


def write_clip_retrieval(store: Store, out: Path, level: str, text: str, rows_per_file: int,
                         progress: bool) -> dict[str, Any]:
    """Every row of ``level`` into clip-retrieval's layout under ``out``."""
    total = store.count(level)
    image = level != "utterances"
    with_text = level == "utterances" or text != "none"
    writer = ClipRetrievalWriter(out, total, store.dim, rows_per_file, image=image, text=with_text)
    texts = TextVectors(store, text) if (with_text and image) else None
    urls = _video_urls(store)
    try:
        with counting(f"clip-retrieval {level}", total, enabled=progress) as advance:
            for start, cols, vecs in _batches(store, level):
                n = len(vecs)
                if texts is not None:
                    tvecs, sources = texts(cols["video_uid"], cols["text"])
                elif with_text:  # utterances: the row's own vector
                    tvecs, sources = vecs, ["utterance"] * n
                else:
                    tvecs, sources = None, None
                meta = _metadata(level, cols, range(start, start + n), urls, sources, image)
                writer.write(meta, vecs if image else None, tvecs)
                advance(n)
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    counts = texts.counts if texts is not None else ({"utterance": total} if with_text else {})
    return {"rows": total, "dtype": "float16", "image": image, "text": with_text, "parts": parts,
            "text_sources": counts}


def _frame_refs(store: Store, level: str, cols: dict[str, list[Any]]) -> list[tuple[str, str] | None]:
    """(shard, key) of the frame that shows each row: the frame itself, or the stored frame of
    the row's video nearest to the middle of its span."""
    if level == "frames":
        return list(zip(cols["shard"], cols["key"]))
    starts, ends = _times(level, cols)
    frames = store.table("frames")
    per_video: dict[str, tuple[np.ndarray, list[str], list[str]]] = {}
    for uid in sorted(set(cols["video_uid"])):
        got = frames.search().where(Filters(video_uids=(uid,)).sql("frames")) \
            .select(["t", "shard", "key"]).limit(None).to_arrow()
        per_video[uid] = (got["t"].to_numpy(), got["shard"].to_pylist(), got["key"].to_pylist())
    refs: list[tuple[str, str] | None] = []
    for uid, s, e in zip(cols["video_uid"], starts, ends):
        t, shards, keys = per_video[uid]
        if len(t) == 0:
            refs.append(None)
            continue
        j = int(np.argmin(np.abs(t - (s + e) / 2)))
        refs.append((shards[j], keys[j]))
    return refs


def read_thumbnails(store: Store, refs: list[tuple[str, str] | None],
                    progress: bool) -> tuple[list[Image.Image | None] | None, str]:
    """The frames' JPEGs from the store's shards, or (None, why not) when the shards are gone."""
    if not store.meta.shards_dir:
        return None, "the store does not record its shards folder (shards_dir), where the frame images are"
    layout = ShardsLayout(store.meta.shards_dir)
    root = layout.root
    if not root.is_dir():
        return None, f"the store's shards folder {root} is gone; the frame images are in its shards"
    members: dict[str, dict[str, MemberRef]] = {}
    images: list[Image.Image | None] = []
    readers = TarReaders()
    missing = 0
    try:
        with counting("thumbnails", len(refs), enabled=progress) as advance:
            for ref in refs:
                im = None
                if ref is not None:
                    shard, key = ref
                    if shard not in members:
                        path = layout.shard(shard)
                        members[shard] = {k: m["jpg"] for k, m in index_tar(path) if "jpg" in m} \
                            if path.is_file() else {}
                    m = members[shard].get(key)
                    if m is not None:
                        try:
                            with Image.open(io.BytesIO(readers.read(layout.shard(shard), m))) as f:
                                im = f.convert("RGB")
                        except OSError:
                            im = None
                missing += im is None
                images.append(im)
                advance(1)
    finally:
        readers.close()
    return images, (f"{missing} of {len(refs)} frames could not be read (grey tiles)" if missing else "")


def write_projector_folder(store: Store, out: Path, level: str, max_points: int, thumb: int, seed: int,
                           sprite: bool, progress: bool) -> dict[str, Any]:
    """A seeded sample of ``level`` (at most ``max_points`` rows, in table order) as a projector folder."""
    cap = max_points_for(thumb)
    if sprite and max_points > cap:
        raise ExportError(f"--max-points {max_points} thumbnails of {thumb} px exceed the projector's 8192 px "
                          f"sprite: at most {cap} (or a smaller --thumb-size, or --no-sprite)")
    if max_points < 1:
        raise ExportError(f"--max-points must be at least 1, not {max_points}")
    total = store.count(level)
    idx = np.sort(np.random.default_rng(seed).choice(total, size=min(max_points, total), replace=False))
    got = store.table(level).to_lance().take(idx.tolist(), columns=_COLUMNS[level] + ["vector"])
    cols = {c: got[c].to_pylist() for c in _COLUMNS[level]}
    vecs = vectors_of(got["vector"], store.dim)
    starts, ends = _times(level, cols)
    meta = [{"video": u, "time": s, "end": e, "split": sp, "level": level, "text": tx}
            for u, s, e, sp, tx in zip(cols["video_uid"], starts, ends, cols["split"], cols["text"])]
    images, reason = (read_thumbnails(store, _frame_refs(store, level, cols), progress) if sprite
                      else (None, "--no-sprite"))
    done = write_projector(out, vecs, meta, f"egoindex_{level}", images, thumb)
    return {**done, "sampled_from": total, "seed": seed, "rows": idx.tolist(),
            "sprite_note": reason, "out_dir": str(out)}


def export_embeddings(store: Store, out: Path, *, level: str = "frames", formats: tuple[str, ...] = FORMATS,
                      text: str = "auto", rows_per_file: int = 1_000_000, max_points: int = 5000,
                      thumb: int = 64, seed: int = 0, sprite: bool = True, progress: bool = True) -> dict[str, Any]:
    """Write the chosen ``formats`` of ``level`` under ``out`` (clip-retrieval folders at its top,
    the projector in ``out/projector``) and ``embeddings_summary.json``; returns that summary."""
    if level not in LEVELS:
        raise ExportError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    if text not in TEXT_MODES:
        raise ExportError(f"--text must be one of {', '.join(TEXT_MODES)}, not {text!r}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"--format must be among {', '.join(FORMATS)}, not {bad or 'nothing'}")
    if store.count(level) == 0:
        raise ExportError(f"the store's {level} table is empty: nothing to export")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"store": str(store.root), "model": store.model_name,
                               "checkpoint_sha256": store.checkpoint_sha256, "dim": store.dim, "level": level,
                               "out_dir": str(out), "clip_retrieval": None, "projector": None}
    if "clip-retrieval" in formats:
        summary["clip_retrieval"] = write_clip_retrieval(store, out, level, text, rows_per_file, progress)
    if "projector" in formats:
        summary["projector"] = write_projector_folder(store, out / "projector", level, max_points, thumb, seed,
                                                      sprite, progress)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["summary_file"] = str(out / SUMMARY_FILE)
    write_json(out / SUMMARY_FILE, summary)
    return summary
