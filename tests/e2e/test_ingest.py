"""End-to-end ingest of the demo corpus: real PyAV, real faster-whisper, read back with webdataset."""

from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.core.fsutil import read_json
from egoindex.ingest.config import IngestConfig, RunOptions
from egoindex.ingest.run import run
from egoindex.media.frames import n_samples
from egoindex.dataset.shards import SHARD_RE, iter_samples, list_pair_shards, list_shards
from egoindex.dataset.layout import is_captioned, read_manifest, read_sizes
from tests.conftest import DEMO_FPS, DEMO_VIDEOS
from tests.media import make_video


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
        # audio facts: what Whisper heard and why it dropped what it dropped
        assert row["captions"] == "whisper" and row["language"] == "en" and float(row["language_probability"]) > 0
        dropped = json.loads(row["dropped_by_reason"])
        assert sum(dropped.values()) == int(row["utterances_dropped"])
        assert set(dropped) <= {"no words", "repeats", "text_compression", "window loop", "confidence",
                                "no_speech_prob"}
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


def test_ingest_of_a_mixed_transcript_folder_with_a_map_a_broken_file_and_whisper(tmp_path: Path):
    """Human transcripts of two formats (an SRT named by --transcript-map, a CHAT file named after
    its video) caption the frames inside their utterances with their text, source and speaker;
    the third video's transcript is broken: recorded, reported, and that video is transcribed by
    the bundled Whisper instead. Real PyAV videos, real faster-whisper, real shards."""
    videos = tmp_path / "videos"
    make_video(videos / "a.mp4", 4, audio=None)  # file captions need no audio
    make_video(videos / "sub" / "kid.mp4", 4, audio=None)
    make_video(videos / "talk.mp4", 4, lines=[(0.5, "The baby grabs the red ball.")])
    tr = tmp_path / "transcripts"
    tr.mkdir()
    (tr / "session1.srt").write_text("1\n00:00:00,000 --> 00:00:01,500\npicks up the <i>cup</i>\n\n"
                                     "2\n00:00:02,000 --> 00:00:03,500\nopens the drawer\n", encoding="utf-8")
    (tr / "kid.cha").write_text("@UTF8\n@Begin\n@Participants:\tCHI Target_Child, MOT Mother\n"
                                "*MOT:\tlook at the [/] the ball . \x150_1500\x15\n*CHI:\tball &-uh ! \x152000_3500\x15\n"
                                "@End\n", encoding="utf-8")
    (tr / "talk.vtt").write_text("00:00.000 --> 00:03.000\nno WEBVTT line\n", encoding="utf-8")
    tmap = tmp_path / "map.csv"
    tmap.write_text("video,file\na,session1.srt\n", encoding="utf-8")
    out = tmp_path / "shards"
    r = CliRunner().invoke(app, ["ingest", str(videos), str(out), "--transcripts", str(tr), "--transcript-map",
                                 str(tmap), "--val-fraction", "0", "-q"])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "transcripts not read" in flat and "talk.vtt" in flat and "mixed" in flat

    frames = {}
    for s in iter_samples(list_shards(out)):
        m = json.loads(s["json"])
        frames[(m["source"], m["t"])] = (s.get("txt", b"").decode(), m["utterance"])
    assert len(frames) == 12
    for t in (0.0, 1.0):
        assert frames[("a.mp4", t)][0] == "picks up the cup"
        assert frames[("sub/kid.mp4", t)][0] == "look at the the ball."
        assert frames[("sub/kid.mp4", t)][1]["speaker"] == "MOT"
    for t in (2.0, 3.0):
        assert frames[("a.mp4", t)][0] == "opens the drawer"
        assert frames[("sub/kid.mp4", t)][0] == "ball uh!"
        assert frames[("sub/kid.mp4", t)][1]["speaker"] == "CHI"
    a0 = frames[("a.mp4", 0.0)][1]
    assert (a0["source"], a0["id"], a0["match"]) == ("srt", "a/srt/1", "inside") and "speaker" not in a0
    assert frames[("sub/kid.mp4", 0.0)][1]["source"] == "chat"
    talk = [u for (src, _), (_, u) in frames.items() if src == "talk.mp4" and u]
    assert talk and {u["source"] for u in talk} == {"whisper"}

    rows = {m["source"]: m for m in read_manifest(out)}
    assert {m["status"] for m in rows.values()} == {"ok"}
    sources = {src: read_json(out / "transcripts" / f"{m['video_uid']}.json")["captions"] for src, m in rows.items()}
    assert sources == {"a.mp4": "srt", "sub/kid.mp4": "chat", "talk.mp4": "whisper"}
    config = read_json(out / "_ingest" / "config.json")
    assert config["captions_format"] == "mixed"

    # the same command again resumes (a "mixed" config is a valid one) and reports the same file
    s = run(videos, out, IngestConfig(val_fraction=0.0), RunOptions(progress=False), transcripts=tr,
            transcript_map=tmap)
    assert (s.processed_now, s.reused, s.captions_format, s.captions_videos) == (0, 3, "mixed", 2)
    assert list(s.captions_failed) == ["talk.vtt"] and "not a known caption-file header" in s.captions_failed["talk.vtt"]
