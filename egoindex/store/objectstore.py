"""``s3://BUCKET/PREFIX`` store locations: parsing, the connection settings from the environment,
and where their local cache lives. Nothing here talks to a server.

Why one owner: a store location is either a folder or an object-store URI, and the same URI must
mean the same bucket, credentials and endpoint to Lance (``storage_options``), to the small-file
I/O of :mod:`egoindex.store.snapshots` (``pyarrow.fs.S3FileSystem``) and to the local cache key;
three readings of ``AWS_*`` would drift. Only an ``s3://`` location the user gave makes egoindex
contact a server; a folder never does.

Settings (the standard AWS variables, read when a location is opened):
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (or
``AWS_DEFAULT_REGION``; default ``us-east-1``), ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``
(an S3-compatible server such as MinIO; an ``http://`` endpoint allows plain HTTP).
``EGOINDEX_CACHE_DIR`` (default ``~/.cache/egoindex``) holds the local copies
(:func:`local_dir`).

This module imports no pyarrow, so :mod:`egoindex.store.layout` (and every light command) can ask
"is this a URI?" for free.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from egoindex.errors import StoreError

SCHEME = "s3://"
#: Where local copies of object-store stores live (default ``~/.cache/egoindex``).
CACHE_ENV = "EGOINDEX_CACHE_DIR"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def is_remote(location: str | Path | None) -> bool:
    """Whether a store location is an object-store URI (``s3://``) rather than a folder."""
    return isinstance(location, str) and location.startswith(SCHEME)


@dataclass(frozen=True)
class S3Location:
    """A store on S3: ``bucket`` and ``prefix`` (no leading or trailing slash; may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """``s3://bucket/prefix`` -> S3Location; anything else is a StoreError saying the form."""
        parts = urlsplit(uri)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if parts.scheme != "s3" or not _BUCKET.match(bucket) or parts.query or parts.fragment or "//" in prefix:
            raise StoreError(f"{uri!r} is not a store URI: write s3://BUCKET/PREFIX (a bucket name of 3-63 "
                             "lower-case letters, digits, dots and dashes)")
        return cls(bucket, prefix)

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, rel: str) -> str:
        """The object key (without the bucket) of ``rel`` under the store's prefix."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, rel: str) -> str:
        """``s3://bucket/prefix/rel``: what Lance is given for a table."""
        return f"{SCHEME}{self.bucket}/{self.key(rel)}"

    def path(self, rel: str = "") -> str:
        """``bucket/prefix/rel``: what ``pyarrow.fs.S3FileSystem`` is given."""
        return f"{self.bucket}/{self.key(rel)}".rstrip("/") if rel else f"{self.bucket}/{self.prefix}".rstrip("/")

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class S3Settings:
    """The connection settings of the environment (see the module docstring)."""

    access_key: str | None
    secret_key: str | None
    session_token: str | None
    region: str
    endpoint: str | None

    @classmethod
    def from_env(cls) -> S3Settings:
        env = os.environ
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise StoreError(f"AWS_ENDPOINT_URL {endpoint!r} must start with http:// or https://")
        return cls(env.get("AWS_ACCESS_KEY_ID") or None, env.get("AWS_SECRET_ACCESS_KEY") or None,
                   env.get("AWS_SESSION_TOKEN") or None,
                   env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1", endpoint)

    @property
    def http(self) -> bool:
        return self.endpoint is not None and self.endpoint.startswith("http://")

    def storage_options(self) -> dict[str, str]:
        """Lance's (and LanceDB's) ``storage_options`` for these settings."""
        opts = {"aws_region": self.region}
        if self.access_key:
            opts["aws_access_key_id"] = self.access_key
        if self.secret_key:
            opts["aws_secret_access_key"] = self.secret_key
        if self.session_token:
            opts["aws_session_token"] = self.session_token
        if self.endpoint:
            opts["aws_endpoint"] = self.endpoint
        if self.http:
            opts["allow_http"] = "true"
        return opts


def cache_root() -> Path:
    """``$EGOINDEX_CACHE_DIR`` or ``~/.cache/egoindex``."""
    got = os.environ.get(CACHE_ENV)
    return Path(got).expanduser() if got else Path.home() / ".cache" / "egoindex"


def local_dir(location: S3Location) -> Path:
    """The local folder of one object-store store: ``CACHE/stores/{sha256(uri)[:16]}`` (its build
    stage, its materialised snapshots, serve's local state; docs/store.md)."""
    digest = hashlib.sha256(location.uri.encode("utf-8")).hexdigest()[:16]
    return cache_root() / "stores" / digest
