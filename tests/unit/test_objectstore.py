"""``s3://`` store locations (egoindex.store.objectstore): parsing, settings from the environment,
the local cache folder, and the layout of a store on object storage. No server is contacted here
(tests/e2e/test_s3_store.py runs against a real one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from egoindex.cli.common import open_store
from egoindex.errors import StoreError
from egoindex.store.layout import StoreLayout
from egoindex.store.objectstore import S3Location, S3Settings, is_remote, local_dir
from egoindex.store.snapshots import snapshot_key

AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
       "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for k in AWS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("EGOINDEX_CACHE_DIR", str(tmp_path / "cache"))
    return monkeypatch


def test_parse_and_paths() -> None:
    loc = S3Location.parse("s3://my-bucket/labs/store1/")
    assert (loc.bucket, loc.prefix, loc.uri) == ("my-bucket", "labs/store1", "s3://my-bucket/labs/store1")
    assert loc.url("lance/frames.lance") == "s3://my-bucket/labs/store1/lance/frames.lance"
    assert loc.path("egoindex.json") == "my-bucket/labs/store1/egoindex.json"
    assert S3Location.parse("s3://my-bucket").url("egoindex.json") == "s3://my-bucket/egoindex.json"
    assert is_remote("s3://b/x") and not is_remote("store") and not is_remote(Path("s3:/b/x"))


@pytest.mark.parametrize("bad", ["s3://", "s3://B/x", "s3://ab/x", "s3://bucket/x?y=1", "s3://bucket/a//b",
                                 "gs://bucket/x"])
def test_bad_uris_say_the_form(bad: str) -> None:
    with pytest.raises(StoreError, match="s3://BUCKET/PREFIX"):
        S3Location.parse(bad)


def test_storage_options_follow_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert S3Settings.from_env().storage_options() == {"aws_region": "us-east-1"}  # nothing else invented
    clean_env.setenv("AWS_ACCESS_KEY_ID", "id")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    clean_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    clean_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert S3Settings.from_env().storage_options() == {
        "aws_region": "eu-west-1", "aws_access_key_id": "id", "aws_secret_access_key": "secret",
        "aws_endpoint": "http://127.0.0.1:9000", "allow_http": "true"}
    clean_env.setenv("AWS_REGION", "us-west-2")  # wins over AWS_DEFAULT_REGION
    clean_env.setenv("AWS_ENDPOINT_URL_S3", "https://minio.lab:9000")  # the S3-specific one wins; https: no allow_http
    opts = S3Settings.from_env().storage_options()
    assert opts["aws_region"] == "us-west-2" and opts["aws_endpoint"] == "https://minio.lab:9000"
    assert "allow_http" not in opts
    clean_env.setenv("AWS_ENDPOINT_URL_S3", "minio.lab:9000")
    with pytest.raises(StoreError, match="http:// or https://"):
        S3Settings.from_env()


def test_layout_of_an_s3_store(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    layout = StoreLayout("s3://my-bucket/store", stage="rank1-part0")
    base = local_dir(S3Location.parse("s3://my-bucket/store"))
    assert base.parent == tmp_path / "cache" / "stores"
    assert local_dir(S3Location.parse("s3://my-bucket/other")) != base  # one folder per URI
    assert layout.root == base / "build" / "rank1-part0" and layout.location == "s3://my-bucket/store"
    assert layout.uri("clips") == "s3://my-bucket/store/lance/clips.lance"
    assert layout.lance_uri == "s3://my-bucket/store/lance"
    assert layout.storage_options == {"aws_region": "us-east-1"}
    assert layout.thumbs == base / "_thumbs" and layout.bench == base / "bench"  # local-only state
    with pytest.raises(StoreError, match="not supported for a store on object storage"):
        layout.refuse_remote("`egoindex redact`")
    folder = StoreLayout(tmp_path / "store")
    assert folder.storage_options is None and folder.thumbs == tmp_path / "store" / "_thumbs"
    folder.refuse_remote("`egoindex redact`")  # a folder: allowed


def test_every_commit_gets_its_own_snapshot() -> None:
    doc = {"table_versions": {"frames": 2, "clips": 1}, "updated_at": "2026-01-01T00:00:00+00:00", "rows": {}}
    key = snapshot_key(doc)
    assert snapshot_key({**doc, "rows": {"frames": 9}}) == key  # only versions and the commit time count
    assert snapshot_key({**doc, "table_versions": {"frames": 3, "clips": 1}}) != key
    assert snapshot_key({**doc, "updated_at": "2026-01-02T00:00:00+00:00"}) != key


def test_a_folder_only_command_refuses_an_s3_uri() -> None:
    # typer's Path arguments fold s3://b/x into s3:/b/x: the message gives the URI back and says where it works
    with pytest.raises(StoreError, match=r"takes a store folder, not s3://bucket/x: s3:// stores work with build"):
        open_store(Path("s3://bucket/x"))


def test_copies_of_killed_readers_are_removed(tmp_path: Path) -> None:
    """A reader killed while copying a snapshot leaves ``.KEY.tmp-HOST-PID``: the next open on this
    host deletes it once that process is gone, and never a live one's or another host's."""
    import subprocess
    import sys

    from egoindex.store import snapshots

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "snapshots"
    names = {"dead": f".k1.tmp-{snapshots._HOST}-{dead.pid}", "me": f".k2.tmp-{snapshots._HOST}-{os.getpid()}",
             "other_host": f".k3.tmp-elsewhere-{dead.pid}", "complete": "k4"}
    for n in names.values():
        (folder / n / "indexes").mkdir(parents=True)
    assert snapshots._remove_dead_copies(folder) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(v for k, v in names.items() if k != "dead")
