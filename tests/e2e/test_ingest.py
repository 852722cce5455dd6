"""End-to-end ingest of the demo corpus: real PyAV, real faster-whisper, read back with webdataset."""

from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image

from egoindex.core.fsutil import read_json
from egoindex.media.frames import n_samples
from egoindex.dataset.shards import SHARD_RE, iter_samples, list_pair_shards, list_shards
from egoindex.dataset.layout import is_captioned, read_manifest, read_sizes
from tests.conftest import DEMO_FPS, DEMO_VIDEOS


@pytest.fixture(scope="module")
def samples(demo_shards: Path) -> list[dict]:
    out = []
    for shard in list_shards(demo_shards):
        for s in iter_samples([shard]):
            s["_shard"] = shard.name
            s["_meta"] = json.loads(s["json"])
            out.append(s)
    return out


def test_every_video_ok_and_counts_match_duration_times_fps(demo_videos: Path, demo_shards: Path, samples: list[dict]):
    gt = read_json(demo_videos / "ground_truth.json")
    rows = {r["source"]: r for r in read_manifest(demo_shards)}
    assert len(rows) == DEMO_VIDEOS
    per_video = Counter(s["_meta"]["source"] for s in samples)
    for v in gt["videos"]:
        row = rows[v["path"]]
        assert row["status"] == "ok", row
        expected = n_samples(v["duration"], DEMO_FPS)
        assert int(row["frames"]) == per_video[v["path"]] == expected
        times = sorted(s["_meta"]["t"] for s in samples if s["_meta"]["source"] == v["path"])
        assert times == pytest.approx([k / DEMO_FPS for k in range(expected)])
        assert float(row["speech_s"]) > 0 and int(row["utterances"]) >= len(v["scenes"]) // 2
    assert len({s["__key__"] for s in samples}) == len(samples)


def test_sizes_json_matches_shards_and_shards_mix_videos(demo_shards: Path, samples: list[dict]):
    sizes = read_sizes(demo_shards)  # both series: what the build reads
    assert sizes == dict(Counter(s["_shard"] for s in samples))
    assert sorted(sizes) == sorted(p.name for p in list_shards(demo_shards))
    # sizes.json beside the pair shards counts pairs: every sample there has a caption
    pairs = read_json(demo_shards / "sizes.json")
    assert sorted(pairs) == [p.name for p in list_pair_shards(demo_shards)]
    assert all(is_captioned(s.get("txt")) == (s["_shard"] in pairs) for s in samples)
    videos_per_shard = defaultdict(set)
    for s in samples:
        videos_per_shard[s["_shard"]].add(s["_meta"]["video_uid"])
    assert max(len(v) for v in videos_per_shard.values()) > 1  # interleaved, not one video per shard
    assert not list(demo_shards.glob(".*tmp*")) and not list((demo_shards / "_ingest" / "staging").iterdir())


def test_split_is_by_video_with_both_sides(samples: list[dict]):
    split_of = defaultdict(set)
    for s in samples:
        assert SHARD_RE.match(s["_shard"])["split"] == s["_meta"]["split"]
        split_of[s["_meta"]["video_uid"]].add(s["_meta"]["split"])
    assert all(len(v) == 1 for v in split_of.values())
    assert {next(iter(v)) for v in split_of.values()} == {"train", "val"}


def test_narration_reaches_the_frames_it_was_spoken_over(demo_videos: Path, samples: list[dict]):
    gt = read_json(demo_videos / "ground_truth.json")
    by_frame = {(s["_meta"]["source"], s["_meta"]["t"]): s for s in samples}
    hits = total = 0
    for v in gt["videos"]:
        for sc in v["scenes"]:
            frames = [by_frame[(v["path"], t)] for (src, t) in by_frame if src == v["path"]
                      and sc["speech_start"] + 0.2 <= t <= sc["speech_end"] - 0.2]
            for s in frames:
                total += 1
                words = set(re.findall(r"[a-z]+", s.get("txt", b"").decode().lower()))
                meta = s["_meta"]["utterance"]
                # The caption names what is said (Whisper may mishear one word, not both).
                if words & {sc["colour"], sc["object"]} and meta and meta["match"] == "inside":
                    hits += 1
    assert total > 20
    assert hits / total >= 0.8, (hits, total)


def test_frames_far_from_speech_have_empty_captions(demo_videos: Path, samples: list[dict]):
    gt = read_json(demo_videos / "ground_truth.json")
    for s in samples:
        v = next(v for v in gt["videos"] if v["path"] == s["_meta"]["source"])
        t = s["_meta"]["t"]
        far = all(t < sc["speech_start"] - 1.6 or t > sc["speech_end"] + 1.6 for sc in v["scenes"])
        if far:
            assert "txt" not in s and s["_meta"]["utterance"] is None, (s["_meta"], s.get("txt"))
            assert s["_shard"].startswith("uncaptioned-")


def test_sample_format_is_what_open_clip_reads(samples: list[dict], demo_shards: Path):
    s = samples[0]
    assert {"jpg", "txt", "json"} <= set(s)
    img = Image.open(io.BytesIO(s["jpg"]))
    assert img.format == "JPEG" and min(img.size) == min(240, 256)  # demo is 320x240: not upscaled
    m = s["_meta"]
    assert {"video_uid", "source", "t", "split", "utterance"} <= set(m)
    with_utt = next(x["_meta"]["utterance"] for x in samples if x["_meta"]["utterance"])
    assert {"id", "start", "end", "no_speech_prob", "avg_logprob", "compression_ratio"} <= set(with_utt)
    transcript = read_json(demo_shards / "transcripts" / f"{m['video_uid']}.json")
    assert transcript["utterances"] and all("words" in u for u in transcript["utterances"])
