"""``egoindex ingest --sampling fast`` end to end: recorded in the config, every stored frame within
0.5 s of its sample time and showing the frame its ``pts_time`` names; a rerun in the other mode
is refused (another mode gives other frames)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.core.fsutil import read_json
from egoindex.dataset.shards import iter_samples, list_shards
from egoindex.media.frames import n_samples
from tests.media import BAND, frame_level, make_gop_video

pytestmark = pytest.mark.slow  # two videos encoded and ingested: ~20 s


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fast")
    videos = root / "videos"
    videos.mkdir()
    make_gop_video(videos / "walk.mp4", 9.0, gop=60)
    make_gop_video(videos / "long_gop.mp4", 9.0, gop=250)
    out = root / "shards"
    r = CliRunner().invoke(app, ["ingest", str(videos), str(out), "--sampling", "fast", "--fps", "2",
                                 "--no-whisper", "--allow-no-audio", "--val-fraction", "0", "-q"])
    assert r.exit_code == 0, r.output
    return videos, out


def test_fast_ingest_records_its_mode_and_keeps_every_frame_within_half_a_second(ingested: tuple[Path, Path]):
    videos, out = ingested
    assert read_json(out / "_ingest" / "config.json")["sampling"] == "fast"
    samples = [s for shard in list_shards(out) for s in iter_samples([shard])]
    assert len(samples) == 2 * n_samples(9.0, 2.0)
    for s in samples:
        meta = json.loads(s["json"])
        assert abs(meta["pts_time"] - meta["t"]) <= 0.5 + 1e-6
        grey = np.asarray(Image.open(io.BytesIO(s["jpg"])).convert("L"), dtype=np.float32)
        rows = round(BAND * meta["height"] / 240) - 4
        assert grey[2:rows].mean() == pytest.approx(frame_level(round(meta["pts_time"] * 30)), abs=4)


def test_a_rerun_in_exact_mode_is_refused(ingested: tuple[Path, Path]):
    videos, out = ingested
    r = CliRunner().invoke(app, ["ingest", str(videos), str(out), "--fps", "2", "--no-whisper", "--allow-no-audio",
                                 "--val-fraction", "0", "-q"])
    assert r.exit_code == 2
    assert "sampling: was 'fast', now 'exact'" in r.output
