"""The shard layout trainers read: captioned pairs in ``{split}-*.tar``, the rest in ``uncaptioned/``.

A small real ingest (PyAV, the bundled faster-whisper) of three 6-8 s videos that speak only part
of the time, through the CLI, so the printed ``--train-data`` line is what is checked. A plain
webdataset 1.x loop over the printed pattern must never see an empty caption and count what
``sizes.json`` says; the build's view (:func:`list_shards`) must still hold every frame; a pack
killed half-way (in either series) and rerun must give the same bytes; an egoindex 0.2 folder is
still read, and refused for a new ingest with a message.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import webdataset as wds

from egoindex.core.fsutil import read_json, write_json
from egoindex.dataset.layout import (SHARD_LAYOUT_KEY, ShardsLayout, is_captioned, read_manifest, read_pair_sizes,
                                     read_sizes, shard_layout)
from egoindex.dataset.shards import ShardWriter, iter_samples, list_pair_shards, list_shards, train_data_pattern
from egoindex.errors import IngestError
from egoindex.ingest.run import IngestConfig, RunOptions, run
from egoindex.train.data import count_train_samples
from tests.media import make_video

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--shard-size", "3", "--val-fraction", "0.3", "-q"]
VIDEOS = {"a.mp4": (8, [(0.5, "The baby grabs the red ball.")]),
          "b.mp4": (8, [(4.5, "A dog runs after the blue cup.")]),
          "c.mp4": (6, [(0.5, "The cat sits on the green chair.")])}


def ingest(videos: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "egoindex", "ingest", str(videos), str(out), *ARGS],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})})


def files(out: Path) -> dict[str, str]:
    """Hashes of every shard and both sizes.json files."""
    lay = ShardsLayout(out)
    paths = list_shards(out) + [lay.sizes, lay.uncaptioned_sizes]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("speaks_sometimes")
    for name, (seconds, lines) in VIDEOS.items():
        make_video(d / name, seconds, lines=lines)
    return d


@pytest.fixture(scope="module")
def ingested(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ingested") / "shards"
    r = ingest(corpus, out)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


def printed_open_clip_args(stdout: str) -> dict[str, str]:
    line = next(x for x in stdout.splitlines() if x.startswith("--train-data "))
    words = shlex.split(line)
    return dict(zip(words[::2], words[1::2]))


def test_plain_webdataset_over_the_printed_pattern_sees_only_pairs(ingested: tuple[Path, str]) -> None:
    out, stdout = ingested
    opts = printed_open_clip_args(stdout)
    assert opts["--dataset-type"] == "webdataset"
    assert opts["--train-data"] == train_data_pattern([p.resolve() for p in list_pair_shards(out, "train")])
    assert re.fullmatch(r".*/train-0000-\{00000\.\.000\d\d\}\.tar", opts["--train-data"]), opts
    counts = {}
    for split in ("train", "val"):
        pairs = list(wds.WebDataset(opts[f"--{split}-data"], shardshuffle=False).decode("pil").to_tuple("jpg", "txt"))
        assert pairs and all(txt.strip() for _, txt in pairs), [t for _, t in pairs]
        n = len(pairs)
        in_sizes = sum(c for name, c in read_pair_sizes(out).items() if name.startswith(f"{split}-"))
        manifest = sum(int(r["captioned_frames"]) for r in read_manifest(out) if r["split"] == split)
        # an independent recount over every frame the build reads: those with a caption
        recount = sum(is_captioned(s.get("txt")) for s in iter_samples(list_shards(out, split)))
        assert n == in_sizes == manifest == recount == int(opts[f"--{split}-num-samples"]), split
        counts[split] = n
    assert count_train_samples(out) == (counts["train"], "sizes.json (captioned pairs)")


def test_the_build_still_reads_every_frame(ingested: tuple[Path, str]) -> None:
    out, _ = ingested
    rows = {r["source"]: r for r in read_manifest(out)}
    sizes = read_sizes(out)
    assert sorted(sizes) == sorted(p.name for p in list_shards(out))
    per_shard, per_video, keys, uncaptioned = Counter(), Counter(), set(), 0
    for shard in list_shards(out):
        for s in iter_samples([shard]):
            meta = json.loads(s["json"])
            per_shard[shard.name] += 1
            per_video[meta["source"]] += 1
            assert s["__key__"] not in keys
            keys.add(s["__key__"])
            if shard.parent.name == "uncaptioned":  # no txt member at all: a trainer pointed here skips them
                assert "txt" not in s and meta["utterance"] is None
                uncaptioned += 1
            else:
                assert s["txt"].strip() and meta["utterance"] is not None
    assert per_shard == sizes
    assert {src: int(r["frames"]) for src, r in rows.items()} == dict(per_video) == \
        {name: seconds for name, (seconds, _) in VIDEOS.items()}  # 1 fps
    assert uncaptioned > 0 and uncaptioned == sum(int(r["frames"]) - int(r["captioned_frames"]) for r in rows.values())


def test_shards_csv_and_manifest_name_both_series(ingested: tuple[Path, str]) -> None:
    out, _ = ingested
    with open(out / "shards.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    sizes = read_sizes(out)
    assert {r["shard"]: int(r["samples"]) for r in rows} == sizes
    for r in rows:
        assert (out / r["path"]).is_file() and (out / r["path"]).name == r["shard"]
        assert r["captioned"] == ("0" if r["shard"].startswith("uncaptioned-") else "1")
    for m in read_manifest(out):
        assert all(n in sizes for n in m["shards"].split())
    assert read_json(out / "_ingest" / "config.json")[SHARD_LAYOUT_KEY] == 3 and shard_layout(out) == 3


@pytest.mark.slow
def test_pack_killed_in_either_series_then_rerun_gives_the_same_bytes(corpus: Path, ingested: tuple[Path, str],
                                                                        tmp_path: Path) -> None:
    ref, _ = ingested
    out = tmp_path / "shards"
    n_train_pairs = len(list_pair_shards(ref, "train"))
    # the first kill lands after the first uncaptioned train shard, the second (counting anew:
    # the train pack is redone) after the second val pair shard
    for nth in (n_train_pairs + 1, len(list_shards(ref, "train")) + 2):
        r = ingest(corpus, out, {"EGOINDEX_FAILPOINT": f"shard-done:{nth}"})
        assert r.returncode == -9, r.stdout + r.stderr
        assert len(list_shards(out)) == nth and not (out / "sizes.json").exists()
    r = ingest(corpus, out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert files(out) == files(ref)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


@pytest.mark.slow
def test_added_videos_continue_both_series(corpus: Path, ingested: tuple[Path, str], tmp_path: Path) -> None:
    ref, _ = ingested
    out, more = tmp_path / "shards", tmp_path / "videos"
    shutil.copytree(ref, out)
    shutil.copytree(corpus, more)
    make_video(more / "d.mp4", 7, lines=[(3.0, "The girl opens the yellow box.")])
    before = files(ref)
    r = ingest(more, out)
    assert r.returncode == 0, r.stdout + r.stderr
    after = files(out)
    assert all(after[k] == v for k, v in before.items() if k.endswith(".tar"))  # published shards never change
    for split in ("train", "val"):
        for series in (list_pair_shards(out, split), [p for p in list_shards(out, split) if "uncaptioned" in p.name]):
            idx = [int(p.name[-9:-4]) for p in series]
            assert idx == list(range(len(idx)))  # numbered on, without gaps: one brace range
    opts = printed_open_clip_args(r.stdout)
    n = len(list(wds.WebDataset(opts["--train-data"], shardshuffle=False).to_tuple("txt")))
    assert n == int(opts["--train-num-samples"]) == sum(c for k, c in read_pair_sizes(out).items() if k[:5] == "train")


def _as_0_2(src: Path, dst: Path) -> Path:
    """``src`` rewritten as egoindex 0.2 wrote SHARDS_DIR: every frame of a split in its
    ``{split}-*.tar`` shards (uncaptioned ones with an empty txt), one sizes.json, no
    ``uncaptioned/`` and no shard layout in ``_ingest/config.json``."""
    shutil.copytree(src, dst)
    lay = ShardsLayout(dst)
    sizes = {}
    for split in ("train", "val"):
        samples = list(iter_samples(list_shards(dst, split)))
        for p in list_shards(dst, split):
            p.unlink()
        w = ShardWriter(dst / f"{split}-0000-00000.tar")
        for s in samples:
            w.write(s["__key__"], {"jpg": s["jpg"], "txt": s.get("txt", b""), "json": s["json"]})
        w.close()
        sizes[w.path.name] = w.count
    shutil.rmtree(lay.uncaptioned)
    write_json(lay.sizes, sizes)
    cfg = read_json(lay.config)
    del cfg[SHARD_LAYOUT_KEY]
    write_json(lay.config, cfg)
    return dst


def test_an_egoindex_0_2_folder_is_read_and_refused_for_new_videos(corpus: Path, ingested: tuple[Path, str],
                                                                      tmp_path: Path) -> None:
    ref, _ = ingested
    old = _as_0_2(ref, tmp_path / "old")
    assert shard_layout(old) == 1
    # the build reads every frame; training counts (and keeps) the captioned ones
    assert sum(read_sizes(old).values()) == sum(read_sizes(ref).values())
    assert [p.name for p in list_shards(old)] == ["train-0000-00000.tar", "val-0000-00000.tar"]
    assert count_train_samples(old) == (count_train_samples(ref)[0], "captioned frames in _ingest records")
    with tarfile.open(old / "train-0000-00000.tar") as tf:
        assert any(m.name.endswith(".txt") and m.size == 0 for m in tf)
    with pytest.raises(IngestError, match="egoindex 0.2.*new SHARDS_DIR"):
        run(corpus, old, IngestConfig(shard_size=3, val_fraction=0.3), RunOptions(progress=False))
    shutil.rmtree(old / "_ingest")  # copied without _ingest/: still told apart by uncaptioned/sizes.json
    assert shard_layout(old) == 1 and shard_layout(ref) == 3
