"""Bad inputs, end to end: one corpus holding every kind of bad (and awkward) file through ingest;
shards with damaged members, an empty shard and non-UTF-8 text through train and build; and
checkpoints that must be refused (another model's, one carrying a pickled code payload).

Every bad input must end in a clear message or a recorded skip with its reason, and nothing good
may be lost around it. The corpus is made by ``tests/badmedia.py`` (``Case`` lists what ingest
must record for each file); what was tried is reported with ``record_faults`` (``FAULTS:`` lines,
``$EGOINDEX_FAULT_REPORT``). ``test_ingest_faults.py`` holds the ingest options around bad input
(``--allow-no-audio``, ``--keep-truncated``, ``--strict``); ``test_store.py`` a JPEG-damaged and a
truncated shard.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egoindex.media.discover import video_uid
from egoindex.model.openclip import ModelError, create, load_model, make_checkpoint, read_checkpoint, save_checkpoint
from egoindex.dataset.shards import ShardWriter, index_tar, iter_samples, list_shards
from egoindex.store import Store, StoreError
from egoindex.store.schema import vectors_of
from egoindex.dataset.layout import read_manifest
from egoindex.ingest.run import IngestConfig, RunOptions, run as ingest_run
from egoindex.train.loop import launch
from tests.badmedia import FPS, Case, record_faults, write_bad_corpus
from tests.e2e.test_store import assert_indexes_match_tables, build, read_table

TINY = "ego-tiny-vit"
QUERY = "the baby grabs the red ball"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- 1. one ingest run over a folder mixing good and bad files ------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("bad corpus ünï")
    return root, write_bad_corpus(root)


@pytest.fixture(scope="module")
def ingested(corpus: tuple[Path, list[Case]], tmp_path_factory: pytest.TempPathFactory):
    root, _ = corpus
    out = tmp_path_factory.mktemp("bad_shards")
    summary = ingest_run(root, out, IngestConfig(fps=FPS, val_fraction=0.0, shard_size=50), RunOptions(progress=False))
    return out, summary


def _statuses(c: Case) -> tuple[str, ...]:
    return c.status if isinstance(c.status, tuple) else (c.status,)


@pytest.mark.slow
def test_every_bad_input_is_recorded_and_every_good_video_lands(corpus, ingested) -> None:
    root, cases = corpus
    out, summary = ingested
    rows = {r["source"]: r for r in read_manifest(out)}
    assert set(rows) == {c.source for c in cases}  # every file is accounted for, none silently dropped
    for c in cases:  # ... each with its own record
        assert (out / "_ingest" / "videos" / f"{video_uid(c.source)}.json").is_file(), c.source
    problems = {p["source"]: p for p in summary.problems}
    by_source: dict[str, list[dict]] = defaultdict(list)
    for s in iter_samples(list_shards(out)):
        meta = json.loads(s["json"])
        by_source[meta["source"]].append({**meta, "jpg": s["jpg"], "txt": s.get("txt", b"").decode("utf-8")})

    observed = {}
    for c in cases:
        r = rows[c.source]
        observed[c.source] = {"what": c.what, "status": r["status"], "reason": r["reason"], "warnings": r["warnings"]}
        assert r["status"] in _statuses(c), (c.source, r)
        assert r["reason"].startswith(c.reason), (c.source, r)
        if c.warning:
            assert c.warning in r["warnings"], (c.source, r)
        if r["status"] != "ok":
            # a clear reason: a machine-readable kind, then words (in the manifest and the run summary)
            kind, _, words = r["reason"].partition(": ")
            assert kind and len(words) > 8, r["reason"]
            assert problems[c.source] == {"source": c.source, "status": r["status"], "reason": r["reason"]}
            assert c.source not in by_source, f"{c.source} was {r['status']} yet has samples"
            continue
        got = sorted(by_source[c.source], key=lambda m: m["t"])
        assert len(got) == int(r["frames"]), c.source  # every sampled frame of a good video is in the shards
        if c.frames is not None:
            assert len(got) == c.frames, c.source
            assert [m["t"] for m in got] == pytest.approx([k / FPS for k in range(c.frames)])
        if c.size is not None:
            assert {Image.open(io.BytesIO(m["jpg"])).size for m in got} == {c.size}, c.source
            assert {(m["width"], m["height"]) for m in got} == {c.size}, c.source
    for c in cases:
        if c.good and c.warning != "no speech" and "4000" not in c.source:
            assert any("baby" in m["txt"].lower() for m in by_source[c.source]), f"{c.source}: speech not captioned"

    # the phone video stands upright: its white left half (as coded) is on top once rotated -90
    grey = np.asarray(Image.open(io.BytesIO(by_source["portrait_phone.mov"][0]["jpg"])).convert("L"), np.float32)
    assert grey[: grey.shape[0] // 2 - 8].mean() > 200 and grey[grey.shape[0] // 2 + 8:].mean() < 50
    # ... and its record says so: display size (taller than wide) and the rotation applied
    phone = rows["portrait_phone.mov"]
    assert (int(phone["width"]), int(phone["height"])) == (240, 320), phone
    record = json.loads((out / "_ingest" / "videos" / f"{video_uid('portrait_phone.mov')}.json").read_text())
    assert record["rotation"] == 270 and (record["width"], record["height"]) == (240, 320), record

    # a rerun over the same folder redoes nothing (bad files included) and changes nothing
    before = {p.name: p.read_bytes() for p in list_shards(out)}
    again = ingest_run(root, out, IngestConfig(fps=FPS, val_fraction=0.0, shard_size=50), RunOptions(progress=False))
    assert again.processed_now == 0 and again.reused == len(cases)
    assert {p.name: p.read_bytes() for p in list_shards(out)} == before

    record_faults("bad_inputs_ingest", {"files": len(cases), "ok": sum(o["status"] == "ok" for o in observed.values()),
                                        "recorded_not_ok": sum(o["status"] != "ok" for o in observed.values()),
                                        "cases": observed})


# ---- 2. damaged shards through build and train --------------------------------------------------


def _rewrite(shard: Path, change) -> None:
    """Rewrite a shard sample by sample; ``change(i, key, members)`` edits the members."""
    samples = [(key, {ext: _read(shard, ref) for ext, ref in refs.items()}) for key, refs in index_tar(shard)]
    w = ShardWriter(shard)
    for i, (key, members) in enumerate(samples):
        change(i, key, members)
        w.write(key, members)
    w.close()


def _read(path: Path, ref) -> bytes:
    with open(path, "rb") as f:
        f.seek(ref.offset)
        return f.read(ref.size)


@pytest.fixture(scope="module")
def damaged(demo_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``demo_shards`` with, in the first train shard: a caption that is not UTF-8, a JPEG that is
    not a JPEG and a json member that is not JSON (first samples: training reaches them in its
    first pass); in the first val shard a corrupt tar member header half-way; plus an empty
    (valid, zero-sample) train shard listed in sizes.json."""
    shards = tmp_path_factory.mktemp("damaged") / "shards"
    shutil.copytree(demo_shards, shards)
    facts: dict = {}
    first = list_shards(shards, "train")[0]

    def change(i: int, key: str, m: dict) -> None:
        if not m["txt"].strip():  # captioned samples only: training drops the others unread
            return
        if "txt_key" not in facts:
            facts["txt_key"], facts["txt"] = key, m["txt"].decode()
            m["txt"] = b"caf\xe9 \xff\xfe " + m["txt"]  # latin-1 and stray bytes
        elif "jpg_key" not in facts:
            facts["jpg_key"], m["jpg"] = key, b"this is not a JPEG" * 10
        elif "json_key" not in facts:
            facts["json_key"], m["json"] = key, b'{"video_uid": "\xff'
    _rewrite(first, change)
    facts["damaged_shard"] = first.name

    val = list_shards(shards, "val")[0]
    members = [m for m in tarfile.open(val) if m.isfile()]
    keys = list(dict.fromkeys(m.name.partition(".")[0] for m in members))
    broken = next(m for m in members if m.name.startswith(keys[len(keys) // 2] + "."))  # first member of a middle sample
    with open(val, "r+b") as f:
        f.seek(broken.offset + 148)  # the header checksum
        f.write(b"9999999\0")
    facts["header_shard"] = val.name
    facts["header_kept"], facts["header_lost"] = keys[: len(keys) // 2], keys[len(keys) // 2:]

    empty = shards / "train-0000-00090.tar"
    tarfile.open(empty, "w").close()
    sizes = json.loads((shards / "sizes.json").read_text())
    (shards / "sizes.json").write_text(json.dumps({**sizes, empty.name: 0}))
    facts["empty_shard"] = empty.name
    return shards, facts


@pytest.mark.slow
def test_build_records_each_damaged_sample_and_builds_the_rest(demo_checkpoint: Path, demo_store: Path,
                                                               damaged, tmp_path: Path) -> None:
    shards, f = damaged
    store = tmp_path / "store"
    s = build(demo_checkpoint, shards, store)
    meta = json.loads((store / "egoindex.json").read_text())
    skipped = meta["skipped"]
    assert s.committed and s.skipped == skipped
    by_key = {x["key"]: x for x in skipped if x["key"]}
    assert set(by_key) == {f["jpg_key"], f["json_key"]}
    assert by_key[f["jpg_key"]]["shard"] == by_key[f["json_key"]]["shard"] == f["damaged_shard"]
    assert "UnidentifiedImageError" in by_key[f["jpg_key"]]["reason"] or "image" in by_key[f["jpg_key"]]["reason"]
    assert "Decode" in by_key[f["json_key"]]["reason"]
    shard_level = [x for x in skipped if not x["key"]]
    assert len(shard_level) == 1 and shard_level[0]["shard"] == f["header_shard"]
    assert "invalid member header" in shard_level[0]["reason"], shard_level  # not silently cut short

    frames, ref = read_table(store, "frames"), read_table(demo_store, "frames")
    lost = {f["jpg_key"], f["json_key"], *f["header_lost"]}
    want = [k for k in ref["key"].to_pylist() if k not in lost]
    assert sorted(frames["key"].to_pylist()) == sorted(want)  # exactly the damaged ones are missing
    rows = {r["key"]: r for r in frames.drop_columns(["vector"]).to_pylist()}
    assert rows[f["txt_key"]]["text"] == "caf\ufffd \ufffd\ufffd " + f["txt"].strip()  # kept, bad bytes shown as U+FFFD
    assert f["empty_shard"] in meta["shards"]  # the empty shard is done, with nothing in it
    mark = json.loads((store / "_build" / "frames" / "train-0000-00090.json").read_text())
    assert mark["samples"] == 0 and mark["skipped"] == []
    got = dict(zip(frames["key"].to_pylist(), vectors_of(frames["vector"], 128)))
    ref_vec = dict(zip(ref["key"].to_pylist(), vectors_of(ref["vector"], 128)))
    np.testing.assert_allclose(np.stack([got[k] for k in want]), np.stack([ref_vec[k] for k in want]), atol=1e-5)
    assert_indexes_match_tables(store)
    assert Store(store).search(QUERY, k=3)
    record_faults("bad_inputs_build", {
        "injected": ["non-UTF-8 txt", "not-a-JPEG jpg", "non-UTF-8 json", "corrupt tar member header",
                     "empty shard"],
        "skipped_records": len(skipped), "frames_lost": len(lost), "frames_built": frames.num_rows,
        "reasons": [x["reason"] for x in skipped]})


@pytest.mark.slow
def test_train_records_each_damaged_sample_and_shard_and_finishes(damaged, tmp_path: Path,
                                                                  recwarn: pytest.WarningsRecorder) -> None:
    """Training skips what it cannot read and says so: a warning and a ``data_faults.jsonl`` line
    for each damaged train sample, and one for the val shard cut short by a corrupt member header
    (which Python's tarfile, and so webdataset, would end silently); ``metrics.jsonl`` counts them."""
    shards, f = damaged
    run_dir = tmp_path / "run"
    code = launch([str(shards), str(run_dir), "--model", TINY, "--epochs", "1", "--batch-size", "16", "--workers", "0",
                   "--threads", "1", "--shuffle-buffer", "1", "--warmup", "1", "--no-progress", "--report-to", "none",
                   "--log-every", "1"])
    assert code == 0
    said = [str(w.message) for w in recwarn if "unclosed file" not in str(w.message)]
    assert any("UnicodeDecodeError" in m and "caf\\xe9" in m for m in said), said  # the latin-1 caption
    assert any("UnidentifiedImageError" in m for m in said), said  # the not-a-JPEG
    assert any("UnicodeDecodeError" in m and "video_uid" in m for m in said), said  # the broken json
    faults = [json.loads(line) for line in (run_dir / "data_faults.jsonl").read_text().splitlines()]
    by_key = {r["key"]: r for r in faults if r["key"]}
    assert {f["txt_key"], f["jpg_key"], f["json_key"]} <= set(by_key), faults
    assert {by_key[k]["shard"] for k in (f["txt_key"], f["jpg_key"], f["json_key"])} == {f["damaged_shard"]}
    assert all(by_key[k]["split"] == "train" for k in (f["txt_key"], f["jpg_key"], f["json_key"]))
    assert "UnidentifiedImageError" in by_key[f["jpg_key"]]["reason"]
    cut = [r for r in faults if r["key"] is None]
    assert [(r["shard"], r["split"]) for r in cut] == [(f["header_shard"], "val")], faults
    assert "invalid member header" in cut[0]["reason"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["recorded"] for m in metrics if m["kind"] == "data_faults"] == [len(faults)]
    ckpt = read_checkpoint(run_dir / "latest.pt")
    total = json.loads((run_dir / "config.json").read_text())["plan"]["total_steps"]
    assert ckpt["step"] == total and ckpt["epoch"] == 1
    record_faults("bad_inputs_train", {"warnings": len(said), "steps": ckpt["step"], "data_faults": len(faults),
                                       "reasons": sorted({r["reason"][:60] for r in faults})})


# ---- 3. checkpoints to refuse -------------------------------------------------------------------


def test_checkpoint_of_another_model_is_refused_by_build_and_query(demo_shards: Path, demo_store: Path,
                                                                   tmp_path: Path) -> None:
    lin = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    foreign = tmp_path / "resnet.pt"  # a checkpoint of a model open_clip does not know
    torch.save({"name": "resnet18", "epoch": 3, "state_dict": lin.state_dict()}, foreign)
    bare = tmp_path / "weights.pt"  # bare weights of some other network
    torch.save(lin.state_dict(), bare)
    cases = [(foreign, None, r"unknown model 'resnet18'"),
             (bare, None, r"does not record its model name; pass the open_clip name"),
             (bare, TINY, r"does not fit model ego-tiny-vit:\s+\d+ weights missing from the checkpoint")]
    said = []
    for ckpt, model, msg in cases:
        store = tmp_path / f"store-{ckpt.stem}-{model}"
        with pytest.raises(ModelError, match=msg) as e:
            build(ckpt, demo_shards, store, model=model)
        said.append(" ".join(str(e.value).split())[:160])
        assert not store.exists()  # refused before anything was written

    # a store whose checkpoint file was replaced by another model's refuses to embed queries with
    # it; text queries still answer through STORE/encoders/text.onnx, which the build exported from
    # (and recorded the sha256 of) the checkpoint the store's vectors came from
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    other = tmp_path / "small.pt"
    save_checkpoint(other, make_checkpoint(create("ego-small-vit").model, "ego-small-vit", epoch=0, step=0, config={}))
    meta = json.loads((store / "egoindex.json").read_text())
    (store / "egoindex.json").write_text(json.dumps({**meta, "checkpoint": str(other)}))
    assert [h.video_uid for h in Store(store).search(QUERY, k=3)] == \
        [h.video_uid for h in Store(demo_store).search(QUERY, k=3)]
    with pytest.raises(StoreError, match="build a new store for this checkpoint") as e:
        Store(store).search(image=Image.new("RGB", (64, 64), (200, 30, 30)))
    said.append(" ".join(str(e.value).split())[:160])
    record_faults("bad_inputs_checkpoints", {"refused": said})


class _Payload:
    """Pickles as ``os.system("touch MARKER")``: runs the moment anything unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_checkpoint_with_pickled_code_is_refused_and_runs_nothing(demo_shards: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    model = create(TINY).model
    torch.save({**make_checkpoint(model, TINY, epoch=1, step=5, config={}), "extra": _Payload(marker)}, evil)

    attempts = {
        "read_checkpoint": lambda: read_checkpoint(evil),
        "load_model (build, query)": lambda: load_model(evil),
        "create --init (train)": lambda: create(TINY, init=evil),
        "egoindex build": lambda: build(evil, demo_shards, tmp_path / "store"),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ModelError, match=r"cannot read .*evil\.pt as a torch checkpoint: it holds pickled Python objects.*posix\.system"):
            attempt()
        assert not marker.exists(), f"{name} ran the pickled code"
    code = launch([str(demo_shards), str(tmp_path / "run"), "--model", TINY, "--init", str(evil), "--no-progress",
                   "--threads", "1", "--workers", "0", "--report-to", "none"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "error: cannot read" in err and "pickled Python objects" in err, err[-2000:]
    assert not marker.exists() and not (tmp_path / "run" / "latest.pt").exists()
    # the payload is live: a full unpickle (what weights_only=True prevents) runs it
    torch.load(evil, weights_only=False)
    assert marker.exists()
    record_faults("bad_inputs_pickle", {"refused_by": [*attempts, "egoindex train --init"], "payload_ran": False})
