"""A store built from a clip-level video checkpoint uses its clip encoder (the temporal head) for
the clips table, says so in ``egoindex.json``, and ``bench mcq`` scores from those clips; a frame
checkpoint's store keeps the frame-mean clips, byte for byte.

Real components throughout: ego-tiny-rn towers, a real tar SHARDS_DIR written with the dataset
helpers (three short videos of JPEG frames, no ingest run: the build only needs the shards, the
manifest, sizes and transcripts), a real build into LanceDB + FAISS.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from egoindex.dataset.layout import write_manifest, write_sizes, write_transcript  # noqa: E402
from egoindex.dataset.shards import ShardWriter, read_shard  # noqa: E402
from egoindex.errors import BuildError  # noqa: E402
from tests.support import torch_threads  # noqa: E402

VIDEOS = ("vid-a", "vid-b", "vid-c")
FPS = 2.0
FRAMES = 20  # 10 s per video: clip windows of 4 s every 2 s hold 8 frames, the clip model sees 4
SHARD = "train-0000-00000.tar"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frame_jpeg(v: int, f: int) -> bytes:
    """Frame f of video v: noise plus a square moving left to right (every frame differs)."""
    rng = np.random.default_rng(1000 * v + f)
    img = (rng.random((72, 96, 3)) * 90).astype(np.uint8)
    col = 4 + 3 * f
    img[20 + 10 * v:44 + 10 * v, col:col + 24] = (60 + 80 * v, 230 - 60 * v, 40 + 9 * f)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clip_shards")
    w = ShardWriter(root / SHARD)
    manifest = []
    for v, uid in enumerate(VIDEOS):
        for f in range(FRAMES):
            meta = {"video_uid": uid, "t": f / FPS, "frame_index": f, "split": "train"}
            w.write(f"{uid}_{f:06d}", {"jpg": frame_jpeg(v, f), "json": json.dumps(meta).encode(),
                                       "txt": f"{uid} says something".encode()})
        write_transcript(root, uid, {"video_uid": uid, "utterances": [
            {"id": f"{uid}-0", "start": 0.5, "end": 4.5, "text": f"a cup on the left in {uid}", "kept": True},
            {"id": f"{uid}-1", "start": 5.0, "end": 9.0, "text": f"a cup moves right in {uid}", "kept": True}]})
        manifest.append({"video_uid": uid, "source": f"{uid}.mp4", "split": "train", "status": "ok",
                         "duration_s": FRAMES / FPS, "width": 96, "height": 72, "native_fps": FPS,
                         "frames": FRAMES, "shards": [SHARD]})
    w.close()
    write_manifest(root, manifest)
    write_sizes(root, {SHARD: FRAMES * len(VIDEOS)})
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(frame checkpoint of ego-tiny-rn, clip checkpoint of ego-tiny-rn-video on the same towers
    with a random, non-identity temporal head: random output projection and position embeddings)."""
    from egoindex.model import openclip
    from egoindex.model.clip_video import create_clip_video, make_clip_video_checkpoint

    root = tmp_path_factory.mktemp("clip_ckpts")
    torch.manual_seed(0)
    created = openclip.create("ego-tiny-rn")
    frame = root / "frame.pt"
    openclip.save_checkpoint(frame, openclip.make_checkpoint(created.model, "ego-tiny-rn", epoch=1, step=1, config={}))
    clip = create_clip_video("ego-tiny-rn-video", init=frame)
    with torch.no_grad():
        torch.nn.init.normal_(clip.model.temporal.proj.weight, std=0.05)
        torch.nn.init.normal_(clip.model.temporal.proj.bias, std=0.05)
        torch.nn.init.normal_(clip.model.temporal.pos, std=0.5)  # positions that matter: order changes the clip
    video = root / "clip.pt"
    openclip.save_checkpoint(video, make_clip_video_checkpoint(clip.model, clip.name, clip.frame_model))
    return frame, video


def build(checkpoint: Path, shards: Path, store: Path, append: bool = False):
    from egoindex.build.run import BuildConfig, run

    with torch_threads(1):
        return run(BuildConfig(checkpoint=checkpoint, shards=shards, store=store, workers=0, progress=False,
                               append=append))


@pytest.fixture(scope="module")
def clip_store(checkpoints: tuple[Path, Path], shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("clip_store") / "store"
    summary = build(checkpoints[1], shards, store)
    assert summary.committed and summary.rows["clips"] > 0
    return store


@pytest.fixture(scope="module")
def frame_store(checkpoints: tuple[Path, Path], shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("frame_store") / "store"
    assert build(checkpoints[0], shards, store).committed
    return store


def table(store_root: Path, name: str) -> tuple[list[dict], np.ndarray]:
    from egoindex.store import Store

    s = Store(store_root)
    t = s.dataset(name).to_table()
    vecs = np.stack(t["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)
    return t.drop(["vector"]).to_pylist(), vecs


def frames_by_video(store_root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """video -> (times, frame vectors, member keys), time-sorted, from the store's frames table."""
    rows, vecs = table(store_root, "frames")
    out = {}
    for uid in VIDEOS:
        idx = sorted((i for i, r in enumerate(rows) if r["video_uid"] == uid), key=lambda i: rows[i]["t"])
        out[uid] = (np.array([rows[i]["t"] for i in idx]), vecs[idx], [rows[i]["key"] for i in idx])
    return out


def test_clip_store_vectors_are_the_temporal_head_on_the_window_frames(clip_store: Path, shards: Path,
                                                                       checkpoints: tuple[Path, Path]) -> None:
    from egoindex.model.clip_video import load_clip_video
    from egoindex.model.pooling import normalised_mean, segment_indices, window_mask
    from egoindex.store import Store

    lv = load_clip_video(checkpoints[1])
    jpegs = {key: sample["jpg"] for key, sample in read_shard(shards / SHARD)}
    frames = frames_by_video(clip_store)
    rows, vecs = table(clip_store, "clips")
    assert len(rows) == 4 * len(VIDEOS)  # [0,4) [2,6) [4,8) [6,10] per 10 s video
    cos_direct, cos_mean = [], []
    for r, v in zip(rows, vecs):
        times, fvecs, keys = frames[r["video_uid"]]
        last = r["end"] == max(x["end"] for x in rows if x["video_uid"] == r["video_uid"])
        members = np.flatnonzero(window_mask(times, r["start"], r["end"], last))
        assert len(members) == r["n_frames"] == 8
        picked = members[segment_indices(len(members), lv.model.num_frames)]
        # the clip model run directly on the same frames' JPEGs, decoded with its own preprocess
        video = torch.stack([lv.preprocess(Image.open(io.BytesIO(jpegs[keys[i]])).convert("RGB")) for i in picked])
        with torch.no_grad():
            direct = lv.model.encode_video(video[None], normalize=True)[0].numpy()
        cos_direct.append(float(direct @ v))
        cos_mean.append(float(normalised_mean(fvecs[members]) @ v))
    assert min(cos_direct) > 0.999, cos_direct
    assert max(cos_mean) < 0.99, cos_mean  # not the frame mean: the head is not the identity
    meta = Store(clip_store).meta
    assert meta.clips_encoder() == {"kind": "temporal-head", "num_frames": 4, "model": "ego-tiny-rn-video",
                                    "video_config": meta.encoders["clips"]["video_config"]}
    assert meta.model == "ego-tiny-rn-video" and meta.encoders["utterances"]["kind"] == "text-tower"
    assert Store(clip_store).info()["encoders"]["clips"]["kind"] == "temporal-head"


def test_store_embedder_loads_the_clip_model(clip_store: Path) -> None:
    from egoindex.store import Store

    s = Store(clip_store)
    emb = s.embedder
    assert emb.video is not None and emb.num_frames == 4 and emb.clip_kind == "temporal-head"
    rng = np.random.default_rng(0)  # distinct unit frame vectors (the random towers' frames are near alike)
    frames = rng.standard_normal((1, 4, emb.dim)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=2, keepdims=True)
    fwd, back = emb.encode_clips(frames), emb.encode_clips(frames[:, ::-1].copy())
    assert abs(float(np.linalg.norm(fwd)) - 1.0) < 1e-5
    assert float(fwd[0] @ back[0]) < 0.999  # order matters to a temporal head


def test_bench_mcq_scores_from_the_clip_store(clip_store: Path, tmp_path: Path) -> None:
    from egoindex.bench.mcq import run_mcq
    from egoindex.metrics import egomcq
    from egoindex.store import Store

    s = Store(clip_store)
    rows, vecs = table(clip_store, "clips")
    texts = ["a cup moves right", "a cup on the left", "something else", "a red square"]
    items = {}
    for k in range(4):  # inter-video items: one window of each video plus two more
        picks = [rows[(k + 4 * j) % len(rows)] for j in range(egomcq.N_CHOICES)]
        choices = {str(i): {"video_uid": p["video_uid"], "clip_start": p["start"], "clip_end": p["end"],
                            "clip_text": p["text"]} for i, p in enumerate(picks)}
        q = dict(choices["0"], clip_text=texts[k])
        items[str(k)] = {"query": q, "choices": choices, "answer": k % egomcq.N_CHOICES, "types": 1}
    path = tmp_path / "egomcq.json"
    egomcq.write_egomcq(items, path)
    result = run_mcq(s, tmp_path / "out", egomcq_file=path)
    assert result.meta["clip_vectors"] == "store clips"
    assert result.meta["clip_encoder"]["kind"] == "temporal-head"
    # the scores are those of the store's (temporal-head) clip vectors against the text tower
    q = s.embedder.encode_texts(texts)
    by_window = {(r["video_uid"], round(r["start"], 3), round(r["end"], 3)): v for r, v in zip(rows, vecs)}
    choice_vecs = {k: np.stack([by_window[(c["video_uid"], round(c["clip_start"], 3), round(c["clip_end"], 3))]
                                for c in (item["choices"][str(i)] for i in range(egomcq.N_CHOICES))])
                   for k, item in items.items()}
    want = egomcq.score_egomcq(items, {k: q[int(k)] for k in items}, choice_vecs)
    for key in ("overall_acc", "correct_inter", "n_inter"):
        assert result.metrics[key] == pytest.approx(want[key])


def test_frame_store_keeps_frame_mean_clips(frame_store: Path) -> None:
    from egoindex.build.derived import clip_rows
    from egoindex.store import Store

    frames = frames_by_video(frame_store)
    rows, vecs = table(frame_store, "clips")
    for uid in VIDEOS:
        times, fvecs, _ = frames[uid]
        _, want = clip_rows(uid, "train", times, fvecs, FRAMES / FPS, [], 4.0, 2.0)
        got = vecs[[i for i, r in enumerate(rows) if r["video_uid"] == uid]]
        assert np.array_equal(got, want)  # the frame-mean bytes of every earlier store
    s = Store(frame_store)
    assert s.meta.clips_encoder()["kind"] == "frame-mean" and s.info()["encoders"]["clips"]["kind"] == "frame-mean"
    assert s.embedder.video is None and s.embedder.num_frames is None


def test_older_store_meta_reads_as_frame_mean() -> None:
    from egoindex.store.layout import StoreMeta

    assert StoreMeta(model="m", checkpoint="c", checkpoint_sha256="0" * 64, embed_dim=8).clips_encoder() == \
        {"kind": "frame-mean"}


def test_append_with_the_other_kind_of_checkpoint_is_refused(frame_store: Path, checkpoints: tuple[Path, Path],
                                                             shards: Path, tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(frame_store, store)
    with pytest.raises(BuildError, match="frame-mean|temporal-head"):
        build(checkpoints[1], shards, store, append=True)


def test_frame_embedder_encode_clips_is_the_normalised_mean(frame_store: Path) -> None:
    from egoindex.model.pooling import normalised_mean
    from egoindex.store import Store

    emb = Store(frame_store).embedder
    fv = frames_by_video(frame_store)["vid-b"][1][:8].reshape(2, 4, -1)
    got = emb.encode_clips(fv)
    assert np.array_equal(got[0], normalised_mean(fv[0])) and np.array_equal(got[1], normalised_mean(fv[1]))
    assert np.allclose(emb.encode_clips(fv[:, ::-1]), got, atol=1e-6)  # a mean ignores order


def test_classify_and_export_pool_windows_with_the_store_clip_encoder(clip_store: Path, frame_store: Path) -> None:
    """A raw video's clips (classify) and NLQ/MQ feature windows (export) come from the same encoder
    as the store's clips: on the store's own frames and windows they give the store's vectors."""
    from egoindex.classify.video_features import clip_pool
    from egoindex.export.backend import Backend
    from egoindex.export.grid import FeatureGrid
    from egoindex.export.rows import FeatureMaker
    from egoindex.export.windows import encode_windows, pool_windows
    from egoindex.model.pooling import pool_clips
    from egoindex.store import Store

    emb = Store(clip_store).embedder
    times, fvecs, _ = frames_by_video(clip_store)["vid-c"]
    rows, vecs = table(clip_store, "clips")
    want = vecs[[i for i, r in enumerate(rows) if r["video_uid"] == "vid-c"]]
    windows, got = clip_pool(times, fvecs, 0.0, FRAMES / FPS, 4.0, 2.0, emb)
    assert windows == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 10.0)]
    assert np.allclose(got, want, atol=1e-5)
    feats = encode_windows(emb, times, fvecs, np.array(windows))
    assert np.allclose(feats, want, atol=1e-5)  # same members, same segment middles, same head
    assert float(np.max(np.sum(pool_windows(times, fvecs, np.array(windows), 4) * want, axis=1))) < 0.99

    clip_maker = FeatureMaker(Backend(clip_store), FeatureGrid(1.0), source="store")
    frame_maker = FeatureMaker(Backend(frame_store), FeatureGrid(1.0), source="store")
    assert clip_maker.temporal_head and not frame_maker.temporal_head
    assert clip_maker.settings()["window_encoder"] == {"kind": "temporal-head", "num_frames": 4}
    assert np.allclose(clip_maker.pool(times, fvecs, np.array(windows)), want, atol=1e-5)
    # a frame model's classify clips are pool_clips' frame means, untouched
    ftimes, ffvecs, _ = frames_by_video(frame_store)["vid-c"]
    _, fgot = clip_pool(ftimes, ffvecs, 0.0, FRAMES / FPS, 4.0, 2.0, Store(frame_store).embedder)
    assert np.array_equal(fgot, pool_clips(ftimes, ffvecs, 0.0, FRAMES / FPS, 4.0, 2.0).vectors)


def test_bench_videos_pool_raw_frames_with_the_clip_encoder(clip_store: Path, tmp_path: Path) -> None:
    """``--videos``: the decoded frames go through the store's clip encoder, forward or reversed."""
    from egoindex.bench.videos import embed_clips_from_videos
    from egoindex.errors import BenchError
    from egoindex.metrics.egomcq import clip_frame_times
    from egoindex.model.video import embed_frames_at
    from egoindex.store import Store
    from tests.media import make_video

    path = make_video(tmp_path / "v.mp4", seconds=4.0, fps=8, size=(96, 72), audio=None)
    emb = Store(clip_store).embedder

    def resolve(uid: str) -> Path:
        return path

    clips = [("v", 0.0, 4.0), ("v", 1.0, 3.0), ("v", 0.0, 4.0)]
    with torch_threads(1):
        fwd = embed_clips_from_videos(emb, clips, resolve, num_frames=None)
        rev = embed_clips_from_videos(emb, clips, resolve, num_frames=None, reverse=True)
        frames = np.stack([embed_frames_at(emb, path, clip_frame_times(s, e, 4)).vectors for _, s, e in clips])
    assert np.allclose(fwd, emb.encode_clips(frames), atol=1e-5)
    assert np.allclose(rev, emb.encode_clips(frames[:, ::-1]), atol=1e-5)
    assert np.array_equal(fwd[0], fwd[2])
    with pytest.raises(BenchError, match="at most 4 frames"):
        embed_clips_from_videos(emb, clips, resolve, num_frames=5)
