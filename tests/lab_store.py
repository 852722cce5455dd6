"""A small "lab" store for the access-control tests: five tiny videos of three children (one of
them in val), with an RTTM's speakers, a participants CSV (child ids and ages) and a CSV
transcript (no Whisper), ``ego-tiny-vit`` trained for one epoch, built in this process.

Built once per process (:func:`lab_store_path`; under xdist once per run through ``build_once``),
because two test modules share it; tests treat it as read-only (the server's users file and audit
log go to a tmp folder, never into the store).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import build_once
from tests.media import make_video
from tests.support import torch_threads

#: source -> (seconds, child_id, age_days); every file has its own length, so its own bytes.
VIDEOS = {"fam1/a.mp4": (8, "S", 200), "fam1/b.mp4": (9, "S", 400), "fam2/c.mp4": (10, "A", 300),
          "fam2/d.mp4": (7, "A", 310), "fam3/e.mp4": (11, "B", 120)}
TRANSCRIPT = """video,start,end,text
fam1/a,0.0,2.0,look at the red ball
fam1/a,2.5,4.0,ba ba ba
fam1/a,4.5,6.5,where is the cup
fam1/b,1.0,3.0,the dog runs
fam1/b,4.0,6.0,shall we read a book
fam2/c,0.5,2.5,a big truck
fam2/c,3.0,5.0,vroom vroom
fam2/c,5.5,7.5,park the truck here
fam2/d,1.0,3.0,more milk please
fam2/d,4.0,6.0,all gone
fam3/e,0.5,3.0,the cat sleeps
fam3/e,6.0,9.0,time for a bath
"""
RTTM = """SPEAKER fam1/a 1 0.000 2.200 <NA> <NA> FEM <NA> <NA>
SPEAKER fam1/a 1 2.400 1.800 <NA> <NA> KCHI <NA> <NA>
SPEAKER fam1/a 1 4.500 2.500 <NA> <NA> MAL <NA> <NA>
SPEAKER fam1/b 1 0.800 2.400 <NA> <NA> KCHI <NA> <NA>
SPEAKER fam1/b 1 3.800 2.400 <NA> <NA> FEM <NA> <NA>
SPEAKER fam2/c 1 0.400 2.200 <NA> <NA> FEM <NA> <NA>
SPEAKER fam2/c 1 3.000 2.000 <NA> <NA> KCHI <NA> <NA>
SPEAKER fam2/c 1 5.400 2.200 <NA> <NA> MAL <NA> <NA>
SPEAKER fam2/d 1 0.900 2.200 <NA> <NA> KCHI <NA> <NA>
SPEAKER fam2/d 1 3.900 2.200 <NA> <NA> KCHI <NA> <NA>
SPEAKER fam3/e 1 0.400 2.700 <NA> <NA> MAL <NA> <NA>
SPEAKER fam3/e 1 5.900 3.200 <NA> <NA> FEM <NA> <NA>
"""
SPEAKERS = ("FEM", "KCHI", "MAL")
CHILDREN = ("S", "A", "B")

_built: dict[str, Path] = {}


def _build(root: Path) -> Path:
    from egoindex.cli.main import app
    from egoindex.train.loop import launch

    lines = ["video,child_id,age_days,date,location"]
    for src, (seconds, child, age) in VIDEOS.items():
        make_video(root / "videos" / src, seconds, audio=None)
        lines.append(f"{src.rsplit('.', 1)[0]},{child},{age},2021-01-05,home")
    (root / "participants.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "transcript.csv").write_text(TRANSCRIPT, encoding="utf-8")
    (root / "all.rttm").write_text(RTTM, encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", str(root / "videos"), str(root / "shards"), "--transcripts",
                            str(root / "transcript.csv"), "--rttm", str(root / "all.rttm"), "--participants",
                            str(root / "participants.csv"), "--no-whisper", "--allow-no-audio", "--fps", "2",
                            "--val-fraction", "0.3", "--shard-size", "16", "-q"])
    assert r.exit_code == 0, r.output
    with torch_threads(1):
        code = launch([str(root / "shards"), str(root / "run"), "--model", "ego-tiny-vit", "--epochs", "1",
                       "--batch-size", "4", "--warmup", "1", "--workers", "0", "--threads", "1", "--no-progress",
                       "--report-to", "none"])
        assert code == 0
        r = runner.invoke(app, ["build", str(root / "run" / "latest.pt"), str(root / "shards"), str(root / "store"),
                                "--workers", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    return root / "store"


def lab_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab store's folder (built on first use in this process)."""
    if "store" not in _built:
        _built["store"] = build_once(tmp_path_factory, "lab_store", _build)
    return _built["store"]
