"""A store on object storage: its non-Lance files as objects, and the local copies readers use.

Lance writes and reads its tables on the object store itself (``s3://.../lance/{table}.lance``,
with :attr:`egoindex.store.layout.StoreLayout.storage_options`). Everything else a reader needs
(FAISS indexes, metadata caches, blackouts, the text encoder) is a plain file that FAISS, Arrow's
memory map and onnxruntime want on local disk, so it is kept on the store as objects and copied
to a local folder before use::

    s3://B/P/egoindex.json                    StoreMeta; written last: the commit point, as on disk
    s3://B/P/lance/{table}.lance              the Lance tables
    s3://B/P/snapshots/{key}/indexes/...      the FAISS indexes of one commit
    s3://B/P/snapshots/{key}/_cache/...       its metadata caches ({table}-v{version}.arrow)
    s3://B/P/snapshots/{key}/_redactions/...  its blackouts
    s3://B/P/encoders/{sha256[:16]}/...       the text encoder exported from checkpoint sha256 (text.json last)
    s3://B/P/_build/...                       the build's resumable state, shared by ranks on any node

``key`` is :func:`snapshot_key` of ``egoindex.json`` (its table versions and ``updated_at``), so
every commit writes new objects and never overwrites what a reader of the previous commit is
copying; a writer deletes snapshots older than the previous one after its commit.

Locally (``CACHE/stores/{hash of the URI}/``, :func:`egoindex.store.objectstore.local_dir`)::

    snapshots/{key}/      one commit's files, copied whole when a reader first opens that commit
    encoders/{sha[:16]}/  the text encoder (shared by the snapshots of a store)
    build/{rank}-{part}/  a build's stage: the files it writes before uploading them

Why copies keyed by commit: a reader opened before an ``--append`` keeps the snapshot of its
``egoindex.json`` (its Lance versions, indexes and caches), so it answers from the old commit while
the new one is written and after; the next open reads the new ``egoindex.json`` and copies the new
snapshot. A snapshot is complete locally once its ``.complete`` mark exists (it is copied into a
temporary folder and renamed), so a killed copy is redone, never half used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from egoindex.core.fsutil import atomic_open
from egoindex.errors import StoreError
from egoindex.model.text_onnx import FACTS_FILE
from egoindex.store.layout import META_FILE, StoreLayout
from egoindex.store.objectstore import S3Location, S3Settings, local_dir

SNAPSHOTS = "snapshots"
ENCODERS = "encoders"
WORK = "_build"
#: The folders of a store root that a snapshot holds (relative paths, copied whole).
SNAPSHOT_DIRS = ("indexes", "_cache", "_redactions")
COMPLETE = ".complete"
#: Local snapshots kept per store (the newest by completion time); older ones are deleted on open.
KEEP_LOCAL = 3
_CHUNK = 1 << 22
#: This host's name in temporary copies' names (``-`` and ``.`` kept out: they delimit the name).
_HOST = "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname()) or "host"


def snapshot_key(doc: dict) -> str:
    """The snapshot name of an ``egoindex.json`` document: a digest of its table versions and
    ``updated_at`` (every commit changes one of them, so every commit gets its own snapshot)."""
    ident = {"table_versions": doc.get("table_versions") or {}, "updated_at": doc.get("updated_at")}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def encoder_key(checkpoint_sha256: str) -> str:
    return str(checkpoint_sha256)[:16]


class ObjectFiles:
    """Small-file I/O under one store's prefix, through ``pyarrow.fs.S3FileSystem`` (paths are
    relative to the prefix). A server that cannot be reached, refuses the credentials or lacks the
    bucket is a StoreError naming the settings to check."""

    def __init__(self, location: S3Location, settings: S3Settings | None = None) -> None:
        s = settings or S3Settings.from_env()
        kw: dict = {"region": s.region}
        if s.access_key and s.secret_key:
            kw.update(access_key=s.access_key, secret_key=s.secret_key, session_token=s.session_token)
        if s.endpoint:
            parts = urlsplit(s.endpoint)
            kw.update(endpoint_override=parts.netloc, scheme=parts.scheme)
        self.location = location
        with self._io("connect to"):
            self.fs = pafs.S3FileSystem(**kw)

    @contextlib.contextmanager
    def _io(self, what: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as e:  # pyarrow's S3 errors are OSErrors
            raise StoreError(f"cannot {what} {self.location.uri}: {' '.join(str(e).split())[:400]} (check the "
                             "bucket, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_REGION)"
                             ) from e

    def read_bytes(self, rel: str) -> bytes | None:
        """An object's bytes, or None when there is none."""
        with self._io(f"read {rel} of"):
            try:
                with self.fs.open_input_stream(self.location.path(rel)) as f:
                    return f.read()
            except FileNotFoundError:
                return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self._io(f"write {rel} to"), self.fs.open_output_stream(self.location.path(rel)) as f:
            f.write(data)

    def upload(self, local: Path, rel: str) -> None:
        with self._io(f"write {rel} to"), open(local, "rb") as src, \
                self.fs.open_output_stream(self.location.path(rel)) as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)

    def download(self, rel: str, local: Path) -> None:
        """Copy an object to ``local`` atomically (a killed copy leaves no partial file)."""
        with self._io(f"read {rel} of"), self.fs.open_input_stream(self.location.path(rel)) as src, \
                atomic_open(local, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)

    def files(self, rel_dir: str) -> list[str]:
        """The objects under ``rel_dir`` (recursive), as paths relative to ``rel_dir``; [] for none."""
        base = self.location.path(rel_dir)
        with self._io(f"list {rel_dir} of"):
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)

    def children(self, rel_dir: str) -> list[str]:
        """The names directly under ``rel_dir`` (objects and "folders")."""
        base = self.location.path(rel_dir)
        with self._io(f"list {rel_dir} of"):
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True))
        return sorted(i.base_name for i in infos)

    def exists(self, rel: str) -> bool:
        with self._io(f"look up {rel} in"):
            return self.fs.get_file_info(self.location.path(rel)).type == pafs.FileType.File

    def delete(self, rel: str) -> None:
        with self._io(f"delete {rel} of"), contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.location.path(rel))

    def delete_dir(self, rel_dir: str) -> None:
        with self._io(f"delete {rel_dir} of"), contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.location.path(rel_dir))


def files_of(layout: StoreLayout) -> ObjectFiles:
    if layout.remote is None:
        raise StoreError(f"{layout.location} is a folder, not a store on object storage")
    return ObjectFiles(layout.remote)


def _rel(layout: StoreLayout, path: Path) -> str:
    return path.relative_to(layout.root).as_posix()


def _local_files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.rglob("*") if p.is_file() and ".tmp-" not in p.name)


def _download_tree(files: ObjectFiles, rel_dir: str, dest: Path) -> int:
    names = files.files(rel_dir)
    for name in names:
        files.download(f"{rel_dir}/{name}", dest / name)
    return len(names)


# ---- the writer's side ----------------------------------------------------------------------

def pull_stage(layout: StoreLayout) -> None:
    """Make a build's local stage the store's last commit plus its build state: ``egoindex.json``,
    that commit's snapshot (so indexes are extended, not rebuilt) and ``_build/``. What the stage
    held before is dropped: the object store is the truth (another node may have built since)."""
    files = files_of(layout)
    for d in (*SNAPSHOT_DIRS, WORK):
        shutil.rmtree(layout.root / d, ignore_errors=True)
    layout.meta.unlink(missing_ok=True)
    raw = files.read_bytes(META_FILE)
    if raw is not None:
        key = snapshot_key(_doc(raw, layout.location))
        for d in SNAPSHOT_DIRS:
            _download_tree(files, f"{SNAPSHOTS}/{key}/{d}", layout.root / d)
        with atomic_open(layout.meta, "wb") as f:
            f.write(raw)
    pull_work(layout)


def pull_work(layout: StoreLayout) -> None:
    """Copy ``_build/`` from the object store into the stage (what other ranks and parts wrote)."""
    _download_tree(files_of(layout), WORK, layout.work)


def push(layout: StoreLayout, path: Path) -> None:
    """Upload one file of the stage to the same place under the store (a ``_build/`` mark)."""
    files_of(layout).upload(path, _rel(layout, path))


def drop(layout: StoreLayout, path: Path) -> None:
    """Delete one file of the stage and its object."""
    path.unlink(missing_ok=True)
    files_of(layout).delete(_rel(layout, path))


def publish(layout: StoreLayout) -> str:
    """Upload the stage's snapshot (indexes, metadata caches, blackouts) under a new key, then
    ``egoindex.json`` (the commit), then delete snapshots older than the previous commit's.
    Returns the new key."""
    files = files_of(layout)
    raw = layout.meta.read_bytes()
    key = snapshot_key(_doc(raw, layout.location))
    previous = files.read_bytes(META_FILE)
    for d in SNAPSHOT_DIRS:
        for p in _local_files(layout.root / d):
            files.upload(p, f"{SNAPSHOTS}/{key}/{_rel(layout, p)}")
    files.write_bytes(META_FILE, raw)  # the commit point: readers now open this snapshot
    keep = {key} | ({snapshot_key(_doc(previous, layout.location))} if previous is not None else set())
    for old in files.children(SNAPSHOTS):
        if old not in keep:
            files.delete_dir(f"{SNAPSHOTS}/{old}")
    return key


def publish_encoders(layout: StoreLayout, checkpoint_sha256: str) -> bool:
    """Upload the stage's text encoder under ``encoders/{sha[:16]}/`` unless the store has it
    (its facts file last: a reader takes the encoder only once that exists). Returns whether it
    uploaded."""
    facts = layout.encoders / FACTS_FILE
    if not facts.is_file():
        return False
    files = files_of(layout)
    rel = f"{ENCODERS}/{encoder_key(checkpoint_sha256)}"
    if files.exists(f"{rel}/{FACTS_FILE}"):
        return False
    for p in _local_files(layout.encoders):
        if p != facts:
            files.upload(p, f"{rel}/{p.relative_to(layout.encoders).as_posix()}")
    files.upload(facts, f"{rel}/{FACTS_FILE}")
    return True


# ---- the reader's side ----------------------------------------------------------------------

def _doc(raw: bytes, where: str) -> dict:
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise StoreError(f"{where}/{META_FILE} is not JSON ({e}); rebuild the store") from e
    if not isinstance(doc, dict):
        raise StoreError(f"{where}/{META_FILE} is not a JSON object; rebuild the store")
    return doc


def open_snapshot(uri: str) -> StoreLayout:
    """A reader's layout of the store at ``uri``: its current ``egoindex.json`` and that commit's
    files, copied to ``CACHE/stores/{hash}/snapshots/{key}`` unless already there; the Lance
    tables are read on the object store. Not an egoindex store: StoreError."""
    loc = S3Location.parse(uri)
    files = ObjectFiles(loc)
    for attempt in range(3):
        try:
            return _open_snapshot(loc, files)
        except FileNotFoundError as e:  # a writer deleted the snapshot while it was copied: read the new commit
            if attempt == 2:
                raise StoreError(f"{loc.uri} changed three times while it was being opened ({e}); open it again"
                                 ) from e
    raise AssertionError("unreachable")


def _open_snapshot(loc: S3Location, files: ObjectFiles) -> StoreLayout:
    raw = files.read_bytes(META_FILE)
    if raw is None:
        hint = (" (a build was started but never committed: rerun `egoindex build`)"
                if files.children(WORK) else "")
        raise StoreError(f"{loc.uri} is not an egoindex store: no {META_FILE}{hint}")
    doc = _doc(raw, loc.uri)
    base = local_dir(loc)
    key = snapshot_key(doc)
    snap = base / SNAPSHOTS / key
    if not (snap / COMPLETE).is_file():
        _remove_dead_copies(base / SNAPSHOTS)
        tmp = base / SNAPSHOTS / f".{key}.tmp-{_HOST}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for d in SNAPSHOT_DIRS:
            _download_tree(files, f"{SNAPSHOTS}/{key}/{d}", tmp / d)
        with atomic_open(tmp / META_FILE, "wb") as f:
            f.write(raw)
        (tmp / COMPLETE).touch()
        if not (snap / COMPLETE).is_file():  # a copy without its mark (killed before the rename)
            shutil.rmtree(snap, ignore_errors=True)
        try:
            os.replace(tmp, snap)
        except OSError:  # another reader renamed its complete copy first
            shutil.rmtree(tmp, ignore_errors=True)
        _prune_local(base / SNAPSHOTS, keep=snap)
    encoders = base / ENCODERS / encoder_key(str(doc.get("checkpoint_sha256", "")))
    if not (encoders / COMPLETE).is_file():
        _fetch_encoders(files, encoders)
    (base / "uri.txt").write_text(loc.uri + "\n", encoding="utf-8")
    return StoreLayout(snap, remote=loc, encoders=encoders)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_dead_copies(folder: Path) -> int:
    """Delete the temporary copies (``.KEY.tmp-HOST-PID``) of readers on this host that were
    killed while copying; returns how many. Copies named for another host (a cache folder on a
    shared file system) are left alone: whether that process lives cannot be told from here."""
    removed = 0
    if not folder.is_dir():
        return 0
    for p in folder.glob(".*.tmp-*"):
        host, _, pid = p.name.rsplit(".tmp-", 1)[-1].rpartition("-")
        if host == _HOST and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def _fetch_encoders(files: ObjectFiles, dest: Path) -> None:
    """Copy the store's text encoder when it has one (facts file last, then the mark)."""
    rel = f"{ENCODERS}/{dest.name}"
    names = files.files(rel)
    if FACTS_FILE not in names:
        return  # none exported (yet): text queries use the PyTorch model
    for name in [n for n in names if n != FACTS_FILE] + [FACTS_FILE]:
        files.download(f"{rel}/{name}", dest / name)
    (dest / COMPLETE).touch()


def _prune_local(folder: Path, keep: Path) -> None:
    """Delete local snapshots beyond the :data:`KEEP_LOCAL` newest (by completion), never ``keep``.
    A reader of a deleted one keeps its memory-mapped files (POSIX); one that loads an index
    later finds none and ranks exactly, giving the same rows."""
    done = sorted((p for p in folder.iterdir() if (p / COMPLETE).is_file() and p != keep),
                  key=lambda p: (p / COMPLETE).stat().st_mtime, reverse=True)
    for old in done[KEEP_LOCAL - 1:]:
        shutil.rmtree(old, ignore_errors=True)
