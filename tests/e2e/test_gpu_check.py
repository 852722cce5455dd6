"""benchmarks/gpu.sh on the CPU: every section of the GPU check runs its CPU fallback or says why not.

The GPU run itself needs a lent device; this is what keeps the script runnable in between: the
shell wrapper, the section runner, the corpus it makes (synthetic videos, a captions CSV, real
``egoindex ingest``), benchmarks/embed.py on it, faster-whisper batched and sequential, a gloo
all_reduce across 2 processes and ``egoindex train --nproc-per-node 2``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_check import SECTIONS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # ~3 min on 2 idle cores (the script's own budget stops it at 12.5)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PY": sys.executable, "BUDGET_S": "700", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu", "--quick", "--out-dir", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    data = json.loads((out / "gpu-check.json").read_text())
    data["_out"] = str(out)
    return data


def test_every_section_has_results_or_a_reason(report: dict):
    assert report["device"] == "cpu" and report["quick"] is True
    assert set(report["sections"]) == set(SECTIONS)
    for name, s in report["sections"].items():
        assert s["status"] in ("ok", "skipped"), (name, s.get("reason"), s.get("traceback"))
        if s["status"] == "ok":
            assert s["results"], name
        else:
            assert len(s["reason"]) > 5, name
    # on a machine without CUDA only the GPU-only section is skipped, and it says so
    faiss = report["sections"]["faiss"]
    assert (faiss["status"], faiss["reason"]) == ("skipped", "no CUDA device")
    assert all(report["sections"][n]["status"] == "ok" for n in SECTIONS if n != "faiss")


def test_cpu_fallbacks_measure_something_real(report: dict):
    s = {k: v.get("results") for k, v in report["sections"].items()}
    pyav = s["video_decode"]["backends"][0]
    assert pyav["backend"].startswith("PyAV") and pyav["decode_every_frame_fps"] > 0
    assert pyav["exact_1fps_max_error_s"] <= 1 / 30 and pyav["fast_1fps_max_error_s"] <= 0.5
    gpu_only = [b for b in s["video_decode"]["backends"] if b["backend"] == "PyNvVideoCodec"]
    assert gpu_only and "CUDA" in gpu_only[0]["skipped"]
    jpeg = {r["method"]: r for r in s["jpeg_decode"]["results"]}
    assert all(r["images_per_s"] > 0 for r in jpeg.values() if "images_per_s" in r)
    assert any("cuda" in m and "skipped" in r for m, r in jpeg.items())
    measured = [m for m in s["embed"]["models"] if "skipped" not in m]
    assert measured and measured[0]["forward_only_steady_frames_per_s"] > 0
    assert (Path(report["_out"]) / measured[0]["json"]).is_file()
    assert {m["model"] for m in s["embed"]["models"] if "skipped" in m} == {"ViT-B-32", "ViT-L-14"}
    assert [m["mode"].split()[0] for m in s["whisper"]["modes"]] == ["sequential", "batched"]
    assert all(m["words"] > 0 for m in s["whisper"]["modes"])
    assert s["nccl"]["backend"] == "gloo" and s["nccl"]["world"] == 2 and s["nccl"]["sum_correct_on_all_ranks"]
    ddp = s["ddp_train"]
    assert ddp["world"] == 2 and ddp["rank_logs"] == ["rank-0.jsonl", "rank-1.jsonl"] and ddp["steps"] >= 1
    assert "--nproc-per-node 2" in ddp["command"]
