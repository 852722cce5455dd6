"""``egoindex bench charades`` end to end on the session demo store: the demo corpus' Charades
files (``--generate``), segment and video levels, store clips and raw videos, and the trained
model above the computed chance. The CLI runs in-process so the model loads once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from egoindex.bench.charades_files import read_charades_classes, read_charades_csv
from egoindex.cli.main import app

runner = CliRunner()


def invoke(*args: object) -> str:
    r = runner.invoke(app, ["bench", *map(str, args)])
    assert r.exit_code == 0, f"exit {r.exit_code}: {r.output}\n{r.exception!r}"
    return " ".join(r.output.split())


@pytest.mark.slow
def test_charades_on_the_demo_store(demo_store: Path, demo_videos: Path, tmp_path: Path) -> None:
    gt = json.loads((demo_videos / "ground_truth.json").read_text(encoding="utf-8"))
    out = invoke("charades", demo_store, "--generate", "--split", "all", "--level", "segment", "--out-dir", tmp_path,
                 "--device", "cpu", "-q")
    csv_path, cls_path = tmp_path / "charades_demo_all.csv", tmp_path / "charades_demo_classes.txt"
    rows, classes = read_charades_csv(csv_path), read_charades_classes(cls_path)
    assert len(classes) == 60 and classes[0] == ("c000", "the ball rolls")
    assert len(rows) == len(gt["videos"]) and sum(len(r.actions) for r in rows) == sum(len(v["scenes"]) for v in gt["videos"])

    seg = json.loads((tmp_path / "charades_segment.json").read_text(encoding="utf-8"))
    m = seg["metrics"]
    print(f"\ndemo Charades segment level: mAP {m['mAP']:.2f}, chance {m['chance_mAP']:.2f}, "
          f"prevalence {m['mean_prevalence']:.2f}, {m['n_videos']} segments, {m['n_classes_scored']} classes")
    assert "mAP" in out and (tmp_path / "charades_segment_ap.png").stat().st_size > 0
    assert (tmp_path / "charades_segment.md").read_text(encoding="utf-8").startswith("# charades_segment")
    table = seg["tables"]["classes"]
    assert len(table) == 60 and sum(r["AP"] is not None for r in table) == m["n_classes_scored"]
    assert np.mean([r["AP"] for r in table if r["AP"] is not None]) == pytest.approx(m["mAP"])
    assert m["chance_mAP"] >= m["mean_prevalence"] > 0 and 0 <= m["mAP"] <= 100

    # EgoVLP's protocol: frames of each segment from the raw video, the raw class name as the prompt
    invoke("charades", demo_store, "--annotations", csv_path, "--classes", cls_path, "--videos", demo_videos,
           "--level", "segment", "--name", "charades_segment_raw", "--out-dir", tmp_path, "--device", "cpu", "-q")
    raw = json.loads((tmp_path / "charades_segment_raw.json").read_text(encoding="utf-8"))
    mr = raw["metrics"]
    print(f"demo Charades segment level (raw video): mAP {mr['mAP']:.2f}, chance {mr['chance_mAP']:.2f}")
    assert raw["meta"]["vectors"] == "raw video" and mr["n_videos"] == m["n_videos"]
    assert mr["chance_mAP"] == pytest.approx(m["chance_mAP"])  # chance depends on the labels only
    assert mr["mAP"] > mr["chance_mAP"]

    # video level (one vector per video, multi-label), store clips, two prompt templates averaged
    invoke("charades", demo_store, "--annotations", csv_path, "--classes", cls_path, "--out-dir", tmp_path,
           "--device", "cpu", "-q", "--template", "{}", "--template", "a video of {}")
    vid = json.loads((tmp_path / "charades_video.json").read_text(encoding="utf-8"))
    mv = vid["metrics"]
    print(f"demo Charades video level (store clips): mAP {mv['mAP']:.2f}, chance {mv['chance_mAP']:.2f}")
    assert mv["n_videos"] == len(gt["videos"]) and vid["meta"]["templates"] == ["{}", "a video of {}"]
    assert 0 < mv["chance_mAP"] <= 100 and 0 <= mv["mAP"] <= 100

    r = runner.invoke(app, ["bench", "charades", str(demo_store), "--generate", "--classes", str(cls_path)])
    assert r.exit_code == 2 and "--generate" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text('id,actions,length\nnot-a-video,"c000 0 1",5\n', encoding="utf-8")
    r = runner.invoke(app, ["bench", "charades", str(demo_store), "--annotations", str(bad), "--classes", str(cls_path),
                            "--out-dir", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 2 and "not in the store" in " ".join(r.output.split())
