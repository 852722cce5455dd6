"""``egoindex export embeddings`` on a small synthetic store (real LanceDB tables, real tar shards).

The consumers' side is restated here, not imported from egoindex: a reader that does what
autofaiss / clip-retrieval do with the folder (sorted glob of ``img_emb/*.npy``, ``np.load`` of
each part, parquet parts in the same order), and TensorBoard's own projector plugin serving the
projector folder (its config parser, tensor reader and sprite route).
"""

from __future__ import annotations

import glob
import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import text_format
from PIL import Image
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.dataset.shards import ShardWriter
from egoindex.errors import ExportError, StoreError
from egoindex.export.clip_retrieval import part_names, part_sizes
from egoindex.export.embeddings import export_embeddings
from egoindex.export.projector import max_points_for
from egoindex.store import Store
from egoindex.store.layout import StoreLayout, StoreMeta
from egoindex.store.schema import schema_for, vectors_array
from egoindex.store.writer import record_tables, write_meta, write_table

DIM = 16
VIDEOS = ("vid-a", "vid-b")
FRAMES_PER_VIDEO = 11
SHARD = "train-0000-00000.tar"
UNCAPTIONED_SHARD = "uncaptioned-train-0000-00000.tar"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def colour_of(i: int) -> tuple[int, int, int]:
    """Frame i's solid colour (distinct per frame, so sprite tiles can be told apart)."""
    return (20 * (i % 12), 255 - 20 * (i // 12), 90)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two videos, 11 frames each (one without a caption, one captioned with unstored text),
    2 utterances per video, clips of 4 s, and one tar shard holding every frame's JPEG."""
    root = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(0)
    shards, videos_root = root / "shards", root / "videos"
    shards.mkdir()
    videos_root.mkdir()
    (shards / "uncaptioned").mkdir()
    frames, utts, clips = [], [], []
    w = ShardWriter(shards / SHARD)
    w_unc = ShardWriter(shards / "uncaptioned" / UNCAPTIONED_SHARD)  # frames without a caption live there
    i = 0
    for uid in VIDEOS:
        (videos_root / f"{uid}.mp4").write_bytes(b"")
        u_text = [f"{uid} first words", f"{uid} second words"]
        for j, (s, e) in enumerate(((0.0, 5.0), (5.0, 10.0))):
            utts.append({"utterance_id": f"{uid}-{j}", "video_uid": uid, "start": s, "end": e, "split": "train",
                         "text": u_text[j], "no_speech_prob": 0.1, "avg_logprob": -0.2, "compression_ratio": 1.0,
                         "unit": "b"})
        for f in range(FRAMES_PER_VIDEO):
            t = float(f)
            text = "" if f == 10 else ("words nobody said" if f == 9 else u_text[0 if t < 5 else 1])
            key = f"{uid}_{f:06d}"
            buf = io.BytesIO()
            Image.new("RGB", (48, 32), colour_of(i)).save(buf, format="JPEG", quality=95)
            (w_unc if not text else w).write(key, {"jpg": buf.getvalue(), "json": json.dumps({"video_uid": uid, "t": t}).encode(),
                          "txt": text.encode()})
            frames.append({"video_uid": uid, "t": t, "frame_index": f, "split": "train", "text": text,
                           "shard": UNCAPTIONED_SHARD if not text else SHARD, "key": key, "unit": SHARD})
            i += 1
        for s in (0.0, 2.0, 4.0, 6.0):
            clips.append({"video_uid": uid, "start": s, "end": s + 4.0, "n_frames": 4, "split": "train",
                          "text": u_text[0] if s + 4.0 <= 5.0 else " ".join(u_text), "unit": "b"})
    w.close()
    w_unc.close()
    layout = StoreLayout(root / "store")
    vids = [{"video_uid": u, "source": f"{u}.mp4", "split": "train", "duration": 11.0, "width": 48, "height": 32,
             "native_fps": 1.0, "n_frames": FRAMES_PER_VIDEO, "n_utterances": 2, "unit": "b"} for u in VIDEOS]
    for name, rows in (("frames", frames), ("clips", clips), ("utterances", utts), ("videos", vids)):
        schema = schema_for(name, DIM)
        cols = {n: [r.get(n) for r in rows] for n in schema.names if n != "vector"}  # no speakers: null
        if "vector" in schema.names:
            cols["vector"] = vectors_array(_unit(rng, len(rows)))
        write_table(layout, name, pa.table(cols, schema=schema), DIM)
    rows, versions = record_tables(layout)
    write_meta(layout, StoreMeta(model="ViT-B-32", checkpoint=str(root / "gone.pt"), checkpoint_sha256="0" * 64,
                                 embed_dim=DIM, shards_dir=str(shards), videos_root=str(videos_root), rows=rows,
                                 table_versions=versions))
    return layout.root


def table(store: Store, name: str) -> tuple[list[dict], np.ndarray]:
    t = store.table(name).to_arrow()
    vecs = np.stack(t["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)
    return t.drop(["vector"]).to_pylist(), vecs


def read_clip_retrieval(out: Path) -> tuple[np.ndarray | None, np.ndarray | None, list[dict]]:
    """What autofaiss (``--file_format npy``) and clip_retrieval index read: each folder's parts in
    sorted file order, row i of the parquet parts describing row i of the npy parts."""
    def load(pattern: str) -> tuple[np.ndarray | None, list[int]]:
        files = sorted(glob.glob(str(out / pattern)))
        if not files:
            return None, []
        arrs = [np.load(f) for f in files]
        for a in arrs:
            assert a.dtype == np.float16 and a.ndim == 2
        return np.concatenate(arrs), [len(a) for a in arrs]

    img, img_sizes = load("img_emb/*.npy")
    txt, txt_sizes = load("text_emb/*.npy")
    metas = [pq.read_table(f) for f in sorted(glob.glob(str(out / "metadata" / "*.parquet")))]
    meta_sizes = [m.num_rows for m in metas]
    for sizes in (img_sizes, txt_sizes):
        assert not sizes or sizes == meta_sizes  # parts aligned file by file
    rows = [r for m in metas for r in m.to_pylist()]
    return img, txt, rows


def test_part_names_pad_like_clip_retrieval() -> None:
    assert part_names(1) == ["0"]
    assert part_names(9)[-1] == "8"
    assert part_names(12)[:2] == ["00", "01"] and part_names(12)[-1] == "11"
    assert part_sizes(22, 7) == [7, 7, 7, 1]
    with pytest.raises(ExportError):
        part_sizes(5, 0)


def test_frames_clip_retrieval_parts_align_with_the_store(store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    s = export_embeddings(store, tmp_path, level="frames", formats=("clip-retrieval",), text="store",
                          rows_per_file=7, progress=False)
    assert sorted(os.listdir(tmp_path / "img_emb")) == ["img_emb_0.npy", "img_emb_1.npy", "img_emb_2.npy",
                                                         "img_emb_3.npy"]
    img, txt, meta = read_clip_retrieval(tmp_path)
    rows, vecs = table(store, "frames")
    assert img is not None and txt is not None
    assert img.shape == txt.shape == (len(rows), DIM) == (len(meta), DIM)
    np.testing.assert_allclose(img.astype(np.float32), vecs, atol=1e-3)  # float16 rounding only
    assert [m["video_uid"] for m in meta] == [r["video_uid"] for r in rows]
    assert [m["start"] for m in meta] == [r["t"] for r in rows] == [m["end"] for m in meta]
    assert [m["caption"] for m in meta] == [r["text"] for r in rows]
    assert [m["row"] for m in meta] == list(range(len(rows)))
    assert meta[0]["image_path"] == f"{SHARD}/{rows[0]['key']}.jpg"
    assert meta[10]["image_path"] == f"uncaptioned/{UNCAPTIONED_SHARD}/{rows[10]['key']}.jpg"
    assert meta[3]["url"].startswith("file://") and meta[3]["url"].endswith("vid-a.mp4#t=3")
    assert {m["level"] for m in meta} == {"frames"} and {m["split"] for m in meta} == {"train"}
    # text: the stored utterance vector of the same caption; unstored and empty captions are zero rows
    urows, uvecs = table(store, "utterances")
    by_text = {(r["video_uid"], r["text"]): v for r, v in zip(urows, uvecs)}
    for m, t in zip(meta, txt.astype(np.float32)):
        if (m["video_uid"], m["caption"]) in by_text:
            assert m["text_source"] == "utterance"
            np.testing.assert_allclose(t, by_text[(m["video_uid"], m["caption"])], atol=1e-3)
        else:
            assert m["text_source"] == "none" and not t.any()
    assert s["clip_retrieval"]["text_sources"] == {"utterance": 18, "model": 0, "none": 4}
    summary = json.loads((tmp_path / "embeddings_summary.json").read_text())
    assert summary["clip_retrieval"]["rows"] == len(rows) and len(summary["clip_retrieval"]["parts"]) == 4


def test_a_second_export_replaces_every_part(store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    export_embeddings(store, tmp_path, level="clips", formats=("clip-retrieval",), text="none", rows_per_file=1,
                      progress=False)
    assert len(os.listdir(tmp_path / "img_emb")) == 8 and sorted(os.listdir(tmp_path / "img_emb"))[0] == \
        "img_emb_0.npy"
    assert not (tmp_path / "text_emb").exists()
    export_embeddings(store, tmp_path, level="clips", formats=("clip-retrieval",), text="none",
                      rows_per_file=100, progress=False)
    assert os.listdir(tmp_path / "img_emb") == ["img_emb_0.npy"]
    assert os.listdir(tmp_path / "metadata") == ["metadata_0.parquet"]
    img, txt, meta = read_clip_retrieval(tmp_path)
    rows, vecs = table(store, "clips")
    assert txt is None and img is not None and len(meta) == len(rows) == 8
    np.testing.assert_allclose(img.astype(np.float32), vecs, atol=1e-3)
    assert [(m["start"], m["end"]) for m in meta] == [(r["start"], r["end"]) for r in rows]
    assert "text_source" not in meta[0] and meta[0]["url"].endswith("#t=0,4")


def test_utterances_are_text_only(store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    export_embeddings(store, tmp_path, level="utterances", formats=("clip-retrieval",), progress=False)
    assert not (tmp_path / "img_emb").exists()
    img, txt, meta = read_clip_retrieval(tmp_path)
    rows, vecs = table(store, "utterances")
    assert img is None and txt is not None
    np.testing.assert_allclose(txt.astype(np.float32), vecs, atol=1e-3)
    assert [m["utterance_id"] for m in meta] == [r["utterance_id"] for r in rows]
    assert "image_path" not in meta[0] and meta[0]["caption"] == rows[0]["text"]


def test_text_auto_needs_the_model_for_unstored_captions(store_dir: Path, tmp_path: Path) -> None:
    # clips join two utterances: no stored vector has that text, so "auto" must embed it, and the
    # store's checkpoint is gone
    with pytest.raises(StoreError, match="checkpoint"):
        export_embeddings(Store(store_dir), tmp_path, level="clips", formats=("clip-retrieval",), text="auto",
                          progress=False)
    assert not list((tmp_path / "metadata").glob("*.parquet"))
    assert not [p for p in (tmp_path / "metadata").iterdir()]  # no hidden part left behind


def projector_plugin(logdir: Path):
    """TensorBoard's own projector plugin over ``logdir``, as `tensorboard --logdir` builds it."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    ctx = base_plugin.TBContext(logdir=str(logdir), data_provider=data_provider.MultiplexerDataProvider(
        mux, str(logdir)), multiplexer=mux)
    plugin = ProjectorPlugin(ctx)
    from werkzeug import Request, Response

    apps = plugin.get_plugin_apps()

    def wsgi(environ, start_response):
        req = Request(environ)
        handler = apps.get(req.path)
        if handler is None:
            return Response("not found", 404)(environ, start_response)
        return handler(environ, start_response)

    return Client(wsgi)


def test_projector_folder_loads_in_tensorboard(store_dir: Path, tmp_path: Path) -> None:
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    store = Store(store_dir)
    s = export_embeddings(store, tmp_path, level="frames", formats=("projector",), max_points=9, thumb=16, seed=11,
                          progress=False)
    proj = tmp_path / "projector"
    cfg = text_format.Parse((proj / "projector_config.pbtxt").read_text(), ProjectorConfig())
    emb = cfg.embeddings[0]
    assert emb.tensor_path == "vectors.tsv" and emb.metadata_path == "metadata.tsv"
    assert list(emb.tensor_shape) == [9, DIM]
    assert emb.sprite.image_path == "sprite.png" and list(emb.sprite.single_image_dim) == [16, 16]
    rows, vecs = table(store, "frames")
    picked = s["projector"]["rows"]
    assert len(picked) == 9 == len(set(picked)) and picked == sorted(picked)
    assert {10, 21} <= set(picked)  # the seed picks the uncaptioned frames too (their own shard series)
    again = export_embeddings(store, tmp_path / "again", level="frames", formats=("projector",), max_points=9,
                              thumb=16, seed=11, progress=False)
    assert again["projector"]["rows"] == picked  # seeded

    client = projector_plugin(proj)
    assert json.loads(client.get("/runs").get_data()) == ["."]
    served = json.loads(client.get("/info?run=.").get_data())["embeddings"][0]
    assert served["tensorShape"] == [9, DIM] and served["sprite"]["imagePath"] == "sprite.png"
    name = emb.tensor_name
    got = np.frombuffer(client.get(f"/tensor?run=.&name={name}").get_data(), np.float32).reshape(9, DIM)
    np.testing.assert_allclose(got, vecs[picked], rtol=1e-6, atol=1e-7)
    lines = client.get(f"/metadata?run=.&name={name}").get_data(as_text=True).splitlines()
    assert lines[0].split("\t") == ["video", "time", "end", "split", "level", "text"]
    assert [ln.split("\t")[0] for ln in lines[1:]] == [rows[i]["video_uid"] for i in picked]
    assert [float(ln.split("\t")[1]) for ln in lines[1:]] == [rows[i]["t"] for i in picked]
    sprite = Image.open(io.BytesIO(client.get(f"/sprite_image?run=.&name={name}").get_data())).convert("RGB")
    assert sprite.size == (48, 48)  # 3 x 3 tiles of 16 px
    for k, i in enumerate(picked):  # each tile shows its own frame (JPEG colours within a few levels)
        px = sprite.getpixel(((k % 3) * 16 + 8, (k // 3) * 16 + 8))
        assert max(abs(a - b) for a, b in zip(px, colour_of(i))) <= 6, (k, i, px)


def test_projector_clips_use_the_middle_frame_and_cap_the_sprite(store_dir: Path, tmp_path: Path) -> None:
    store = Store(store_dir)
    s = export_embeddings(store, tmp_path, level="clips", formats=("projector",), max_points=100, thumb=8,
                          progress=False)
    assert s["projector"]["points"] == 8 and s["projector"]["thumbnails"] == 8  # all rows when fewer than the cap
    sprite = Image.open(tmp_path / "projector" / "sprite.png").convert("RGB")
    assert sprite.size == (24, 24)
    # clip 1 of vid-a is [2, 6]: its middle, t = 4, is frame 4
    px = sprite.getpixel((8 + 4, 4))
    assert max(abs(a - b) for a, b in zip(px, colour_of(4))) <= 6
    with pytest.raises(ExportError, match="8192"):
        export_embeddings(store, tmp_path, formats=("projector",), max_points=max_points_for(64) + 1, thumb=64,
                          progress=False)


def test_projector_without_shards_skips_the_sprite_with_a_reason(store_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(store_dir, copy)
    meta = json.loads((copy / "egoindex.json").read_text())
    meta["shards_dir"] = str(tmp_path / "nowhere")
    (copy / "egoindex.json").write_text(json.dumps(meta))
    s = export_embeddings(Store(copy), tmp_path / "out", formats=("projector",), max_points=5, progress=False)
    assert s["projector"]["files"]["sprite"] is None and "gone" in s["projector"]["sprite_note"]
    assert "sprite" not in (tmp_path / "out" / "projector" / "projector_config.pbtxt").read_text()
    assert not (tmp_path / "out" / "projector" / "sprite.png").exists()


def test_cli_writes_both_forms_and_refuses_bad_options(store_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["export", "embeddings", str(store_dir), str(tmp_path), "--text", "store",
                              "--rows-per-file", "10", "--max-points", "4", "--thumb-size", "8", "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path / "text_emb")) == ["text_emb_0.npy", "text_emb_1.npy", "text_emb_2.npy"]
    assert (tmp_path / "projector" / "sprite.png").is_file()
    bad = runner.invoke(app, ["export", "embeddings", str(store_dir), str(tmp_path), "--level", "scenes"])
    assert bad.exit_code != 0 and "frames, clips, utterances" in " ".join(bad.output.split())
