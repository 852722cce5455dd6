"""Stores on object storage: ``egoindex build ... s3://bucket/store``, then query and bench from it.

The S3 server is moto's real HTTP server (``moto[server]``, a dev dependency) on 127.0.0.1 and a
free port, started in this process; Lance writes its tables to it over HTTP, egoindex its other
files through ``pyarrow.fs.S3FileSystem`` (docs/store.md "Stores on object storage"). Nothing is
mocked: the answers compared below came through that server.

* the demo shards built to ``s3://`` answer text queries (every level, filters, merged moments)
  as the same build on disk does: same rows, scores within 1e-5; ``egoindex bench retrieval``
  gives the same metrics, ``egoindex serve``'s API the same hits; the store reopens from an empty
  cache folder, and from the CLI; ``redact`` and malformed URIs are refused with a StoreError;
* an ``--append`` killed after it committed new Lance versions (before ``egoindex.json``), then
  rerun: a reader opened before it answers from the old commit throughout, a reader opened after
  the kill too, and one opened after the rerun sees the new rows, equal to the one-go build.

Where moto cannot start these tests skip with the reason; ``EGOINDEX_REQUIRE_S3=1`` (``.ci/run``)
makes that a failure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from egoindex.bench.alignment import alignment_from_store
from egoindex.bench.mcq import run_mcq
from egoindex.bench.retrieval import retrieval_from_store
from egoindex.build.run import BuildConfig, run
from egoindex.dataset.layout import ShardsLayout, read_sizes, write_sizes
from egoindex.dataset.shards import SHARD_RE
from egoindex.errors import StoreError
from egoindex.store import Filters, Store
from egoindex.store.objectstore import S3Location

REPO = Path(__file__).resolve().parents[2]
BUCKET = "egoindex-test"
QUERIES = ("the baby grabs the red ball", "a dog runs in the kitchen")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on localhost with one bucket; the AWS_* variables point at it and
    EGOINDEX_CACHE_DIR at a fresh folder for the module. Yields the endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer

        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
    except Exception as e:  # not installed, or no socket: say why
        if os.environ.get("EGOINDEX_REQUIRE_S3") == "1":
            pytest.fail(f"EGOINDEX_REQUIRE_S3=1 but moto's S3 server cannot start: {e!r}")
        pytest.skip(f"moto's S3 server cannot start: {e!r}")
    endpoint = f"http://127.0.0.1:{port}"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": endpoint, "EGOINDEX_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))
                     }.items():
            mp.setenv(k, v)
        for k in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE", "EGOINDEX_FAILPOINT"):
            mp.delenv(k, raising=False)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                          endpoint_override=f"127.0.0.1:{port}", scheme="http",
                          allow_bucket_creation=True).create_dir(BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()


def build(ckpt: Path, shards: Path, store: str | Path, **kw):
    return run(BuildConfig(checkpoint=ckpt, shards=shards, store=store, workers=0, progress=False, **kw))


def objects(uri: str) -> list[str]:
    """The object keys under a store URI (read through the server, not through egoindex)."""
    import pyarrow.fs as pafs

    loc = S3Location.parse(uri)
    endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
    fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                           endpoint_override=endpoint, scheme="http")
    base = f"{loc.bucket}/{loc.prefix}"
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)


def answers(store: Store, *, offsets: bool = True) -> list[list[tuple]]:
    """Text queries at every level, raw and merged, unfiltered and filtered: each hit's row, score."""
    uid = sorted(store.videos)[0]
    filters = (Filters(), Filters(split="val"), Filters(video_uids=(uid,)), Filters(where="t >= 10"))
    out = []
    for q in QUERIES:
        for level in ("clips", "frames", "utterances"):
            for f in filters:
                if f.where and level != "frames":
                    continue
                hits = store.search(q, level=level, k=8, filters=f)
                out.append([(h.video_uid, round(h.start, 4), round(h.end, 4), h.offset if offsets else None,
                             h.score) for h in hits])
                raw = store.search(q, level=level, k=8, filters=f, merge=False)
                out.append([(h.video_uid, round(h.start, 4), round(h.end, 4), h.offset if offsets else None,
                             h.score) for h in raw])
    return out


def assert_same_answers(got: list[list[tuple]], want: list[list[tuple]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert [x[:4] for x in g] == [x[:4] for x in w]
        assert np.allclose([x[4] for x in g], [x[4] for x in w], atol=1e-5, rtol=0)
    assert sum(len(w) for w in want) > 0


@pytest.fixture(scope="module")
def s3_store(s3: str, demo_checkpoint: Path, demo_shards: Path) -> str:
    uri = f"s3://{BUCKET}/stores/demo"
    summary = build(demo_checkpoint, demo_shards, uri)
    assert summary.committed and summary.rows["frames"] > 0
    return uri


def test_s3_store_answers_as_the_disk_store(s3_store: str, demo_store: Path, tmp_path: Path) -> None:
    keys = objects(s3_store)
    assert "egoindex.json" in keys
    assert any(k.startswith("lance/frames.lance/data/") for k in keys)  # Lance wrote the table to the server
    assert any(k.startswith("snapshots/") and k.endswith("/indexes/clips.faiss") for k in keys)
    assert any(k.startswith("encoders/") and k.endswith("/text.json") for k in keys)

    remote, disk = Store(s3_store), Store(demo_store)
    assert remote.location == s3_store and remote.info()["store"] == s3_store
    assert {t: v["rows"] for t, v in remote.info()["tables"].items()} == \
        {t: v["rows"] for t, v in disk.info()["tables"].items()}
    assert remote.text_encoder is not None  # the ONNX encoder came from the object store too
    assert remote.index("clips") is not None and remote.index("frames") is not None  # FAISS, not exact
    assert_same_answers(answers(remote), answers(disk))
    r_remote = retrieval_from_store(remote, tmp_path / "remote")
    r_disk = retrieval_from_store(disk, tmp_path / "disk")
    assert r_remote.metrics == pytest.approx(r_disk.metrics, abs=1e-9)
    assert r_remote.meta["store"] == s3_store
    # the other store benchmarks read through the same Store: EgoMCQ (generated from the store's
    # utterances, then scored on its clip vectors) and utterance-frame alignment
    m_remote = run_mcq(remote, tmp_path / "remote", generate=20, seed=0)
    m_disk = run_mcq(disk, tmp_path / "disk", generate=20, seed=0)
    assert (tmp_path / "remote" / "egomcq_generated_questions.json").read_bytes() == \
        (tmp_path / "disk" / "egomcq_generated_questions.json").read_bytes()
    assert m_remote.metrics == pytest.approx(m_disk.metrics, abs=1e-9, nan_ok=True)  # nan: no question of a type
    assert m_remote.metrics["n_inter"] + m_remote.metrics["n_intra"] > 0, m_remote.metrics
    a_remote = alignment_from_store(remote, tmp_path / "remote", seed=0, baselines=3, n_resamples=100)
    a_disk = alignment_from_store(disk, tmp_path / "disk", seed=0, baselines=3, n_resamples=100)
    assert a_remote.metrics == pytest.approx(a_disk.metrics, abs=1e-6) and a_remote.metrics


def test_s3_store_reopens_from_an_empty_cache(s3_store: str, demo_store: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOINDEX_CACHE_DIR", str(tmp_path / "fresh"))
    fresh = Store(s3_store)
    assert fresh.root.is_relative_to(tmp_path / "fresh")  # copied anew, from the server
    assert (fresh.root / "indexes" / "clips.faiss").is_file()
    assert_same_answers(answers(fresh), answers(Store(demo_store)))
    # the CLI takes the URI as it is (a Path argument would have folded s3:// into s3:/)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LANCE_LOG": "error"}
    r = subprocess.run([sys.executable, "-m", "egoindex.cli.main", "query", s3_store, QUERIES[0], "--k", "3",
                        "--json", "--no-merge"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout)
    want = Store(demo_store).search(QUERIES[0], k=3)
    assert [h["video_uid"] for h in got] == [h.video_uid for h in want]
    assert np.allclose([h["score"] for h in got], [h.score for h in want], atol=1e-5)


def test_serve_answers_from_the_s3_store(s3_store: str, demo_store: Path) -> None:
    from fastapi.testclient import TestClient

    from egoindex.serve import create_app

    remote = Store(s3_store)
    got = {}
    for name, store in (("s3", remote), ("disk", Store(demo_store))):
        with TestClient(create_app(store, classify=False)) as client:
            health = client.get("/health").json()
            r = client.get("/api/search", params={"q": QUERIES[0], "k": 5, "split": "val"})
            assert r.status_code == 200, r.text
            got[name] = (health, [(h["video_uid"], h["start"], h["end"], h["score"]) for h in r.json()["hits"]])
    assert got["s3"][0]["store"] == s3_store and got["s3"][0]["rows"] == got["disk"][0]["rows"]
    assert [h[:3] for h in got["s3"][1]] == [h[:3] for h in got["disk"][1]] and got["s3"][1]
    assert np.allclose([h[3] for h in got["s3"][1]], [h[3] for h in got["disk"][1]], atol=1e-5)
    assert remote.layout.thumbs.parent == remote.layout.local_state  # thumbnails stay on this machine


def test_unsupported_and_bad_locations_are_refused(s3: str, demo_store: Path) -> None:
    with pytest.raises(StoreError, match="not an egoindex store"):
        Store(f"s3://{BUCKET}/no/such/store")
    with pytest.raises(StoreError, match="s3://BUCKET/PREFIX"):
        Store("s3://B!/x")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "egoindex.cli.main", "redact", str(demo_store), f"s3://{BUCKET}/x",
                        "--video", "v"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not supported for a store on object storage" in " ".join(r.stdout.split()), \
        r.stdout + r.stderr


def test_reader_keeps_its_commit_during_an_append(s3: str, demo_checkpoint: Path, demo_shards: Path,
                                                 demo_store: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shutil.copytree(demo_shards, shards)
    sizes = read_sizes(shards)
    later = sorted(n for n in sizes if SHARD_RE.match(n)["split"] == "val")  # as test_store's --append test
    held = tmp_path / "held"
    held.mkdir()
    for n in later:
        shutil.move(ShardsLayout(shards).shard(n), held / n)
    write_sizes(shards, {n: c for n, c in sizes.items() if n not in later})
    uri = f"s3://{BUCKET}/stores/growing"
    first = build(demo_checkpoint, shards, uri)
    assert first.committed

    before = Store(uri)  # the reader open during the append
    old_rows = before.count("frames")
    old = answers(before)
    for n in later:
        shutil.move(held / n, ShardsLayout(shards).shard(n))
    write_sizes(shards, sizes)

    # the append, killed after its first FAISS index: new Lance versions committed, egoindex.json not yet
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LANCE_LOG": "error",
           "EGOINDEX_FAILPOINT": "build-index-done:1"}
    r = subprocess.run([sys.executable, "-m", "egoindex.cli.main", "build", str(demo_checkpoint), str(shards), uri,
                        "--append", "--workers", "0", "-q"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert before.dataset("frames").version < _latest_version(uri, "frames")  # the append did commit to Lance
    assert_same_answers(answers(before), old)
    during = Store(uri)  # opened now: still the last finished commit
    assert during.count("frames") == old_rows
    assert_same_answers(answers(during), old)

    # the rerun resumes from the _build/ state on the object store: nothing is embedded again
    again = build(demo_checkpoint, shards, uri, append=True)
    assert again.committed and again.shards_embedded == 0
    assert before.count("frames") == old_rows
    assert_same_answers(answers(before), old)  # the old reader still answers from its commit
    after = Store(uri)
    disk = Store(demo_store)
    assert after.count("frames") == disk.count("frames") > old_rows
    # rows were appended in another order than the one-go build's, so offsets differ; rows and scores do not
    assert_same_answers(answers(after, offsets=False), answers(disk, offsets=False))
    snaps = {k.split("/")[1] for k in objects(uri) if k.startswith("snapshots/")}
    assert len(snaps) == 2  # the new commit's and the previous one's (a reader may still be copying it)


def _latest_version(uri: str, table: str) -> int:
    import lance

    from egoindex.store.layout import StoreLayout

    layout = StoreLayout(uri)
    return lance.dataset(layout.uri(table), storage_options=layout.storage_options).version
