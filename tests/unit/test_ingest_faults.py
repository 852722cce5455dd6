"""Bad input: every kind is recorded with its reason, good videos still land, --strict stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from egoindex.dataset.shards import iter_samples, list_shards
from egoindex.dataset.layout import SHARD_LAYOUT, SHARD_LAYOUT_KEY, read_manifest
from egoindex.ingest.run import IngestConfig, IngestError, RunOptions, run
from tests.media import make_video

REPO = Path(__file__).resolve().parents[2]
SPEECH = [(0.5, "The baby grabs the red ball.")]


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad corpus ünï")
    make_video(d / "good.mp4", 4, lines=SPEECH)
    make_video(d / "Phone Clips" / "bébé à table.MOV", 4, lines=SPEECH)
    make_video(d / "silent.mkv", 4, audio="silence")
    make_video(d / "no_audio.mp4", 4, audio=None)
    (d / "zero.mp4").write_bytes(b"")
    (d / "notes.avi").write_text("not a video at all\n" * 50)
    full = make_video(d / "tmp_full.mp4", 12, lines=SPEECH, faststart=True).read_bytes()
    (d / "truncated.mp4").write_bytes(full[: len(full) // 2])
    header_broken = bytearray(make_video(d / "tmp_h.mp4", 4, lines=SPEECH).read_bytes())
    header_broken[:512] = os.urandom(512)
    (d / "corrupt_header.mp4").write_bytes(bytes(header_broken))
    mid = bytearray(make_video(d / "tmp_mid.mp4", 6, lines=SPEECH, faststart=True).read_bytes())
    for off in range(len(mid) // 3, 2 * len(mid) // 3, 997):
        mid[off : off + 64] = b"\x00" * 64
    (d / "corrupt_middle.webm").write_bytes(bytes(mid))  # wrong extension for the container, too
    for tmp in d.glob("tmp_*.mp4"):
        tmp.unlink()
    return d


def test_each_bad_input_is_recorded_and_good_videos_land(bad_corpus: Path, tmp_path: Path):
    s = run(bad_corpus, tmp_path / "out", IngestConfig(val_fraction=0.0, shard_size=50), RunOptions(progress=False))
    rows = {r["source"]: r for r in read_manifest(tmp_path / "out")}
    expect = {
        "good.mp4": ("ok", ""),
        "Phone Clips/bébé à table.MOV": ("ok", ""),
        "silent.mkv": ("ok", ""),
        "no_audio.mp4": ("skipped", "no-audio"),
        "zero.mp4": ("skipped", "empty"),
        "notes.avi": ("failed", "unreadable"),
        "truncated.mp4": ("skipped", "truncated"),
        "corrupt_header.mp4": ("failed", "unreadable"),
    }
    for src, (status, reason) in expect.items():
        assert rows[src]["status"] == status, rows[src]
        assert rows[src]["reason"].startswith(reason), rows[src]
    assert "no speech" in rows["silent.mkv"]["warnings"]
    # Mid-stream corruption is concealed like ffmpeg does, or the video is recorded as failed;
    # either way it is accounted for and the run went on.
    assert rows["corrupt_middle.webm"]["status"] in ("ok", "failed", "skipped")
    assert s.status_counts["ok"] >= 3 and len(s.problems) >= 5
    got = {json.loads(x["json"])["source"] for x in iter_samples(list_shards(tmp_path / "out"))}
    assert {"good.mp4", "Phone Clips/bébé à table.MOV", "silent.mkv"} <= got
    assert not got & {"no_audio.mp4", "zero.mp4", "notes.avi", "truncated.mp4", "corrupt_header.mp4"}


def test_allow_no_audio_and_keep_truncated_keep_frames(bad_corpus: Path, tmp_path: Path):
    cfg = IngestConfig(val_fraction=0.0, allow_no_audio=True, keep_truncated=True)
    run(bad_corpus, tmp_path / "out", cfg, RunOptions(progress=False))
    rows = {r["source"]: r for r in read_manifest(tmp_path / "out")}
    assert rows["no_audio.mp4"]["status"] == "ok" and int(rows["no_audio.mp4"]["frames"]) == 4
    assert rows["truncated.mp4"]["status"] == "ok" and "truncated" in rows["truncated.mp4"]["warnings"]
    assert 0 < int(rows["truncated.mp4"]["frames"]) < 12


def test_strict_stops_with_an_error_and_keeps_finished_work(bad_corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(IngestError, match="--strict"):
        run(bad_corpus, out, IngestConfig(val_fraction=0.0), RunOptions(progress=False, strict=True))
    recs = [json.loads(p.read_text()) for p in (out / "_ingest" / "videos").glob("*.json")]
    assert any(r["status"] != "ok" for r in recs)
    # The CLI turns it into exit code 2 (its one status for user errors) with the reason on the console.
    r = subprocess.run([sys.executable, "-m", "egoindex.cli.main", "ingest", str(bad_corpus), str(out), "--strict", "-q",
                        "--val-fraction", "0"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "--strict" in r.stdout
    # Without --strict the same folder finishes: finished videos are reused, not redone.
    s = run(bad_corpus, out, IngestConfig(val_fraction=0.0), RunOptions(progress=False))
    assert s.reused >= len(recs) and s.status_counts["ok"] >= 3


def test_rerun_with_other_settings_is_refused(bad_corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    (out / "_ingest").mkdir(parents=True)
    (out / "_ingest" / "config.json").write_text(json.dumps({**IngestConfig().__dict__, "fps": 5.0,
                                                             SHARD_LAYOUT_KEY: SHARD_LAYOUT}))
    with pytest.raises(IngestError, match="fps: was 5.0, now 1.0"):
        run(bad_corpus, out, IngestConfig(), RunOptions(progress=False))


def test_empty_folder_is_a_clear_error(tmp_path: Path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "readme.txt").write_text("no videos here")
    with pytest.raises(IngestError, match="no videos found"):
        run(tmp_path / "v", tmp_path / "out", IngestConfig(), RunOptions(progress=False))
