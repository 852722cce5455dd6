"""A built store answers text queries through its ONNX text encoder, without torch, as PyTorch would.

``demo_store`` is the session's real build (ego-tiny-vit checkpoint, LanceDB, FAISS); ``egoindex
build`` exported ``STORE/encoders/`` at its end. The torch-free answers come from fresh processes
(the Store API and the ``egoindex query`` command) that must never import torch; the reference is
the PyTorch path forced with ``EGOINDEX_TEXT_ENCODER=torch`` in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from egoindex.model.text_onnx import FACTS_FILE, MAX_ABS_DIFF, read_facts
from egoindex.store import Store, StoreError
from egoindex.store.encoders import TEXT_ENCODER_ENV

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUERIES = [("the baby grabs the red ball", "clips"), ("a yellow star spins around", "frames"),
           ("Héllo wörld 😀 — put the cup down", "utterances"), ("word " * 60, "clips")]

NO_TORCH_STORE = """
import json, sys
from egoindex.store import Store
store, queries = sys.argv[1], json.loads(sys.stdin.read())
s = Store(store)
out = [[h.as_dict() for h in s.search(text, level=level, k=10)] for text, level in queries]
bad = [m for m in ("torch", "open_clip", "torchvision") if m in sys.modules]
assert not bad, f"imported {bad}"
print(json.dumps(out))
"""

NO_TORCH_CLI = """
import sys
from egoindex.cli.main import app
try:
    app(sys.argv[1:], prog_name="egoindex")
except SystemExit as e:
    assert not e.code, e.code
assert "torch" not in sys.modules, "imported torch"
"""


def env(**kw: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **kw}


def torch_hits(store: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[dict]]:
    monkeypatch.setenv(TEXT_ENCODER_ENV, "torch")
    s = Store(store)
    got = [[h.as_dict() for h in s.search(text, level=level, k=10)] for text, level in QUERIES]
    assert s.text_encoder is None and "embedder" in s.__dict__  # really the PyTorch path
    return got


def assert_same_hits(got: list[list[dict]], want: list[list[dict]]) -> None:
    for g, w, (text, level) in zip(got, want, QUERIES):
        assert [(h["video_uid"], h["start"], h["end"]) for h in g] == \
            [(h["video_uid"], h["start"], h["end"]) for h in w], (text, level)
        assert max(abs(a["score"] - b["score"]) for a, b in zip(g, w)) < MAX_ABS_DIFF


def test_build_exports_the_text_encoder(demo_store: Path) -> None:
    facts = read_facts(demo_store / "encoders")
    assert facts is not None and facts.model == "ego-tiny-vit"
    assert facts.checkpoint_sha256 == Store(demo_store).checkpoint_sha256
    assert facts.onnx_path.is_file() and facts.vocab_path.is_file() and facts.max_abs_diff < MAX_ABS_DIFF


def test_text_query_without_torch_equals_torch_path(demo_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = subprocess.run([sys.executable, "-c", NO_TORCH_STORE, str(demo_store)], input=json.dumps(QUERIES),
                         capture_output=True, text=True, env=env(**{TEXT_ENCODER_ENV: "onnx"}), timeout=300)
    assert out.returncode == 0, out.stderr
    assert_same_hits(json.loads(out.stdout), torch_hits(demo_store, monkeypatch))


def test_query_command_without_torch(demo_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, level = QUERIES[0]
    out = subprocess.run([sys.executable, "-c", NO_TORCH_CLI, "query", str(demo_store), text, "--level", level,
                          "--k", "10", "--no-merge", "--json"],
                         capture_output=True, text=True, env=env(**{TEXT_ENCODER_ENV: "onnx"}), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert_same_hits([json.loads(out.stdout)], torch_hits(demo_store, monkeypatch)[:1])


def test_old_store_falls_back_then_gains_the_encoder(demo_store: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    shutil.rmtree(store / "encoders")  # a store built before encoders existed
    monkeypatch.setenv(TEXT_ENCODER_ENV, "onnx")
    with pytest.raises(StoreError, match="egoindex encoders"):
        Store(store).search("a ball", k=3)
    monkeypatch.delenv(TEXT_ENCODER_ENV)
    assert Store(store).text_encoder is None  # auto: the torch path, silently
    out = subprocess.run([sys.executable, "-m", "egoindex", "encoders", str(store)], capture_output=True, text=True,
                         env=env(), timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (store / "encoders" / FACTS_FILE).is_file() and "max |ONNX - PyTorch|" in out.stdout
    s = Store(store)
    assert s.text_encoder is not None
    got = [[h.as_dict() for h in s.search(text, level=level, k=10)] for text, level in QUERIES]
    assert_same_hits(got, torch_hits(demo_store, monkeypatch))
    # an encoder of another checkpoint is ignored, never used
    doc = json.loads((store / "encoders" / FACTS_FILE).read_text())
    (store / "encoders" / FACTS_FILE).write_text(json.dumps({**doc, "checkpoint_sha256": "0" * 64}))
    monkeypatch.delenv(TEXT_ENCODER_ENV)
    assert Store(store).text_encoder is None
