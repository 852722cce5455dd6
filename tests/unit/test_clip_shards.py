"""The clip series ``clips/clips-{split}-*.tar``: one sample per kept utterance, its frames in time order.

A small real ingest (PyAV, the bundled faster-whisper) of three 6-14 s videos that say one to three
sentences, through the CLI with ``--keep-staging`` so the staged frames can be compared: every kept
utterance with frames has exactly one clip, holding exactly the staged frames of its window (the
same JPEG bytes as the pair shards); ``clips/sizes.json`` counts them; clips of a video come in
runs; a pack killed in the clip series and rerun gives the same bytes; a SHARDS_DIR of shard
layout 2 is refused with a message (and still read). The max-gap rule for moments shorter than
the frame interval is checked on a hand-made staged tar packed directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from egoindex.core.fsutil import read_json, write_json
from egoindex.dataset.layout import (SHARD_LAYOUT, SHARD_LAYOUT_KEY, ShardsLayout, read_clip_sizes,
                                     read_pack_records, read_pair_sizes, read_sizes, read_transcript,
                                     shard_layout, write_ingest_config, write_transcript)
from egoindex.dataset.shards import (CLIP_SHARD_RE, ShardWriter, clip_sample_frames, index_tar, iter_samples,
                                     list_clip_shards, list_pair_shards, list_shards, read_shard)
from egoindex.errors import DatasetError, IngestError
from egoindex.ingest.config import IngestConfig
from egoindex.ingest.pack import CLIP_PIECE, clip_order, finalize, pack_split
from egoindex.ingest.run import RunOptions, run
from egoindex.model.pooling import window_frames
from tests.media import make_video

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--shard-size", "3", "--val-fraction", "0", "--keep-staging", "-q"]
VIDEOS = {"a.mp4": (14, [(0.5, "The baby grabs the red ball."), (5.0, "A dog runs after the blue cup."),
                         (10.0, "The cat sits on the green chair.")]),
          "b.mp4": (10, [(0.5, "The girl opens the yellow box."), (6.0, "The man cuts the bread.")]),
          "c.mp4": (6, [(1.0, "The boy drinks some water.")])}


def ingest(videos: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "egoindex", "ingest", str(videos), str(out), *ARGS],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})})


def clip_files(out: Path) -> dict[str, str]:
    """Hashes of every shard of the three series and the three sizes.json files."""
    lay = ShardsLayout(out)
    paths = list_shards(out) + list_clip_shards(out) + [lay.sizes, lay.uncaptioned_sizes, lay.clip_sizes]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("speaks_in_moments")
    for name, (seconds, lines) in VIDEOS.items():
        make_video(d / name, seconds, lines=lines)
    return d


@pytest.fixture(scope="module")
def ingested(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingested") / "shards"
    r = ingest(corpus, out)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def clips_in_order(out: Path) -> list[tuple[str, dict, list[bytes], bytes]]:
    """Every clip sample, shards in name order: (key, json, frames, txt), read with read_shard."""
    got = []
    for shard in list_clip_shards(out):
        for key, sample in read_shard(shard):
            assert key is not None, sample
            meta, frames = clip_sample_frames(sample)
            got.append((key, meta, frames, sample["txt"]))
    return got


def test_each_kept_utterance_with_frames_is_one_clip_of_its_staged_window(ingested: Path) -> None:
    out = ingested
    lay = ShardsLayout(out)
    clips = clips_in_order(out)
    keys = [k for k, *_ in clips]
    assert len(keys) == len(set(keys)) and clips
    pair_jpg = {s["__key__"]: s["jpg"] for s in iter_samples(list_pair_shards(out))}
    uids = sorted(p.stem for p in lay.staging.glob("*.tar"))
    assert len(uids) == len(VIDEOS)
    by_key = {k: (meta, frames, txt) for k, meta, frames, txt in clips}
    expected = 0
    for uid in uids:
        samples = index_tar(lay.staged(uid))
        staged = {key: s for key, s in ((s["__key__"], s) for s in iter_samples([lay.staged(uid)]))}
        assert [k for k, _ in samples] == list(staged)
        times = np.array([json.loads(staged[k]["json"])["t"] for k in staged])
        assert np.all(np.diff(times) > 0)
        utts = sorted(read_transcript(out, uid), key=lambda u: (u["start"], u["end"]))
        for k, utt in enumerate(utts):
            key = f"{uid}_u{k:05d}"
            # the rule, spelled out independently: the frames inside the closed window, else the
            # one nearest its middle when it is at most max_gap (1 s) outside the window
            idx = [i for i, t in enumerate(times) if utt["start"] <= t <= utt["end"]]
            if not idx:
                near = int(np.argmin(np.abs(times - (utt["start"] + utt["end"]) / 2)))
                gap = max(utt["start"] - times[near], times[near] - utt["end"])
                idx = [near] if gap <= 1.0 else []
            if idx:  # the model layer's rule agrees
                assert list(window_frames(times, utt["start"], utt["end"])) == idx
            else:
                assert key not in by_key
                continue
            assert key in by_key, (key, utt)
            expected += 1
            meta, frames, txt = by_key[key]
            want_keys = [list(staged)[i] for i in idx]
            assert meta["frame_keys"] == want_keys
            assert meta["times"] == [float(times[i]) for i in idx] == sorted(meta["times"])
            assert frames == [staged[fk]["jpg"] for fk in want_keys]  # the staged bytes, in time order
            assert frames == [pair_jpg[fk] for fk in want_keys]  # = the pair shards' bytes: no re-encode
            assert txt.decode("utf-8") == utt["text"]
            assert meta["video_uid"] == uid and meta["split"] == "train"
            assert meta["utterance"]["id"] == utt["id"]
            assert (meta["utterance"]["start"], meta["utterance"]["end"]) == (utt["start"], utt["end"])
            assert meta["source"] in VIDEOS
    assert expected == len(clips)
    # whisper found the sentences: a few per video, so runs are possible
    assert Counter(m["source"] for _, m, _, _ in clips)["a.mp4"] >= 2
    stats = [r["clip_stats"] for r in read_pack_records(out)]
    assert sum(s["clips"] for s in stats) == len(clips)
    assert sum(s["without_frames"] for s in stats) == sum(s["utterances"] for s in stats) - expected


def test_sizes_and_records_name_the_clip_shards(ingested: Path) -> None:
    out = ingested
    sizes = read_clip_sizes(out)
    shards = list_clip_shards(out)
    assert sorted(sizes) == [p.name for p in shards] and all(CLIP_SHARD_RE.match(n) for n in sizes)
    assert {p.name: sum(1 for _ in read_shard(p)) for p in shards} == sizes
    assert [p.name for p in list_clip_shards(out, "train")] == [p.name for p in shards]
    assert list_clip_shards(out, "val") == []
    rows = [s for r in read_pack_records(out) for s in r["clips"]]
    assert {s["name"]: s["count"] for s in rows} == sizes
    for s in rows:  # a shard closes at >= shard_size (3) frames, or at the end of the pack
        frames = sum(len(clip_sample_frames(x)[1]) for _, x in read_shard(out / "clips" / s["name"]))
        assert frames == s["frames"] and s["bytes"] == (out / "clips" / s["name"]).stat().st_size
        assert frames >= 3 or s is rows[-1]
    # the frame series do not see the clips
    assert not set(sizes) & set(read_sizes(out))
    assert all(p.parent.name != "clips" for p in list_shards(out))
    with open(out / "shards.csv", encoding="utf-8") as f:
        assert "clips-" not in f.read()
    assert read_json(out / "_ingest" / "config.json")[SHARD_LAYOUT_KEY] == SHARD_LAYOUT == 3
    assert shard_layout(out) == 3


def test_clips_of_a_video_come_in_runs_and_shards_mix_videos(ingested: Path) -> None:
    uids = [m["video_uid"] for _, m, _, _ in clips_in_order(ingested)]
    runs, n = [], 1
    for a, b in zip(uids, uids[1:]):
        if a == b:
            n += 1
        else:
            runs.append(n)
            n = 1
    runs.append(n)
    assert max(runs) >= 2 and max(runs) <= CLIP_PIECE
    # a video's clips form one run here (fewer than CLIP_PIECE each): as many runs as videos
    assert len(runs) == len(set(uids))


@pytest.mark.slow
def test_pack_killed_in_the_clip_series_then_rerun_gives_the_same_bytes(corpus: Path, ingested: Path,
                                                                        tmp_path: Path) -> None:
    ref = ingested
    assert len(list_clip_shards(ref)) >= 3
    out = tmp_path / "shards"
    r = ingest(corpus, out, {"EGOINDEX_FAILPOINT": "clip-shard-done:2"})
    assert r.returncode == -9, r.stdout + r.stderr
    assert len(list_clip_shards(out)) == 2 and not (out / "sizes.json").exists()
    assert not read_pack_records(out)  # the record is written last
    r = ingest(corpus, out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert clip_files(out) == clip_files(ref)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_a_layout_2_folder_is_read_and_refused_with_a_message(corpus: Path, ingested: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(ingested, old)
    shutil.rmtree(old / "clips")
    cfg = read_json(old / "_ingest" / "config.json")
    write_json(old / "_ingest" / "config.json", {**cfg, SHARD_LAYOUT_KEY: 2})
    for p in (old / "_ingest" / "packs").glob("*.json"):
        rec = read_json(p)
        write_json(p, {k: v for k, v in rec.items() if k not in ("clips", "clip_stats")})
    assert shard_layout(old) == 2
    # frame training and the build read it as before
    assert read_pair_sizes(old) == read_pair_sizes(ingested) and read_sizes(old) == read_sizes(ingested)
    assert list_clip_shards(old) == []
    with pytest.raises(DatasetError, match="shard layout 2.*new SHARDS_DIR"):
        read_clip_sizes(old)
    with pytest.raises(IngestError, match="shard layout 2.*still read it.*new SHARDS_DIR"):
        run(corpus, old, IngestConfig(shard_size=3, val_fraction=0.0), RunOptions(progress=False))
    shutil.rmtree(old / "_ingest")  # copied without _ingest/: told apart by clips/sizes.json
    assert shard_layout(old) == 2 and shard_layout(ingested) == 3


def _staged_video(lay: ShardsLayout, uid: str, times: list[float]) -> list[bytes]:
    """A staged tar as ingest's first stage writes it (jpg, txt, json with ``t``) with distinct
    stand-in frame bytes; returns them."""
    jpgs = [f"frame {uid} {t}".encode() for t in times]
    w = ShardWriter(lay.staged(uid))
    for i, (t, jpg) in enumerate(zip(times, jpgs)):
        meta = {"video_uid": uid, "source": f"{uid}.mp4", "t": t, "utterance": {"id": f"{uid}_u00000"}}
        w.write(f"{uid}_{i:06d}", {"jpg": jpg, "txt": b"something said", "json": json.dumps(meta).encode()})
    w.close()
    return jpgs


def test_short_moments_take_the_nearest_frame_within_max_gap_only(tmp_path: Path) -> None:
    lay = ShardsLayout(tmp_path / "s")
    lay.make()
    write_ingest_config(lay, {"max_gap": 1.0, SHARD_LAYOUT_KEY: SHARD_LAYOUT})
    jpgs = _staged_video(lay, "v1", [0.0, 1.0, 2.0, 3.0, 10.0])
    utts = [  # time order differs from file order on purpose
        {"id": "v1_u00002", "start": 5.0, "end": 5.5, "text": "far from any frame", "kept": True},
        {"id": "v1_u00000", "start": 1.2, "end": 1.4, "text": "between two frames", "kept": True,
         "tag_verb": [3], "tag_noun": [7], "source": "file"},
        {"id": "v1_u00001", "start": 1.9, "end": 3.1, "text": "two frames long", "kept": True},
        {"id": "v1_u00003", "start": 9.0, "end": 9.2, "text": "0.8 s before the frame at 10 s", "kept": True},
        {"id": "v1_u00004", "start": 2.0, "end": 2.5, "text": "dropped", "kept": False},
    ]
    write_transcript(lay, "v1", {"video_uid": "v1", "utterances": utts})
    pack_split(lay, "train", 0, ["v1"], shard_size=3)
    finalize(lay, [], 1)
    clips = {k: (clip_sample_frames(s), s["txt"]) for p in list_clip_shards(lay.root) for k, s in read_shard(p)}
    # k is the position in time order of the kept utterances: 1.2 (u0), 1.9 (u1), 5.0 (u2), 8.7 (u3)
    assert sorted(clips) == ["v1_u00000", "v1_u00001", "v1_u00003"]
    (meta, frames), txt = clips["v1_u00000"]
    assert meta["times"] == [1.0] and frames == [jpgs[1]] and txt == b"between two frames"
    assert meta["utterance"] == {"id": "v1_u00000", "start": 1.2, "end": 1.4, "source": "file", "tag_verb": [3],
                                 "tag_noun": [7]}
    assert clips["v1_u00001"][0][0]["times"] == [2.0, 3.0] and clips["v1_u00001"][0][1] == jpgs[2:4]
    assert clips["v1_u00003"][0][0]["times"] == [10.0]  # within max_gap; u2 (5.0-5.5: 2 s from 3.0) is not
    rec = read_pack_records(lay)[0]
    assert rec["clip_stats"] == {"utterances": 4, "clips": 3, "without_frames": 1,
                                 "clips_by_speaker": {"unknown": 3}}  # no speaker in this transcript
    assert read_clip_sizes(lay) == {s["name"]: s["count"] for s in rec["clips"]}
    assert sum(read_clip_sizes(lay).values()) == 3 and [p.name for p in list_clip_shards(lay.root)][0] == \
        "clips-train-0000-00000.tar"
    assert [s["__key__"] for s in iter_samples(list_pair_shards(lay.root))] != []


def test_clip_sample_frames_refuses_a_clip_without_all_its_frames() -> None:
    meta = {"times": [1.0, 2.0, 3.0]}
    whole = {"__key__": "v_u00000", "000.jpg": b"a", "001.jpg": b"b", "002.jpg": b"c", "json": json.dumps(meta)}
    assert clip_sample_frames(whole) == (meta, [b"a", b"b", b"c"])
    with pytest.raises(DatasetError, match="2 frame members for 3 frame times"):
        clip_sample_frames({k: v for k, v in whole.items() if k != "002.jpg"})


def test_clip_order_keeps_pieces_of_a_video_together_and_mixes_videos() -> None:
    sizes = {f"v{i:02d}": 3 + (7 * i) % 18 for i in range(20)}  # 3..20 clips a video
    clips = [{"uid": u, "key": f"{u}_u{k:05d}"} for u, n in sizes.items() for k in range(n)]
    order = clip_order(clips, "train", 0, 0)
    assert sorted(c["key"] for c in order) == sorted(c["key"] for c in clips)
    assert order == clip_order(list(reversed(clips)), "train", 0, 0)  # a function of the set of clips
    assert order != clip_order(clips, "train", 0, 1)
    n_pieces = 0
    for u, n in sizes.items():
        pos = [i for i, c in enumerate(order) if c["uid"] == u]
        n_pieces += -(-n // CLIP_PIECE)
        runs_u = [1]  # the video's runs of consecutive positions
        for a, b in zip(pos, pos[1:]):
            runs_u[-1:] = [runs_u[-1] + 1] if b == a + 1 else [runs_u[-1], 1]
        # each piece (8 clips, the last n % 8) is one run, or several pieces of the video met
        odd = [r % CLIP_PIECE for r in runs_u if r % CLIP_PIECE]
        assert odd == ([n % CLIP_PIECE] if n % CLIP_PIECE else []), (u, n, runs_u)
        keys = [order[i]["key"] for i in pos]
        assert keys != sorted(keys) or n <= 3  # shuffled within the video
    runs = 1 + sum(a["uid"] != b["uid"] for a, b in zip(order, order[1:]))
    assert runs >= 0.8 * n_pieces  # pieces of one video rarely meet: videos alternate
