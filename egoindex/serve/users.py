"""The users file of ``egoindex serve``: who may log in, with which role and scope (written and read here only).

``STORE/_access/users.json`` by default (``egoindex users add|remove|list STORE_OR_FILE``)::

    {"format": "egoindex-users", "version": 1,
     "users": {"alice": {"role": "user", "scope": {...}, "password": "$argon2id$...",
                         "token_sha256": "9f2c..." | null, "created_at": "...", "updated_at": "..."}}}

Why these choices:

* passwords are argon2id hashes (``argon2-cffi``'s defaults): a stolen users file does not give the
  passwords back, and each guess costs the attacker tens of milliseconds and 64 MiB;
* API tokens are 256 random bits, so their SHA-256 is enough at rest (nothing to brute-force), and
  a scripted client is not made to pay an argon2 verification per request;
* the file is rewritten atomically (temporary sibling, fsync, rename) under a lock, mode 0600 in a
  0700 folder, so two ``users`` commands never lose each other's change and a running server
  reads the old or the new file, never half of one. The server re-reads it when it changes:
  removing a user, or changing their password, role or scope, ends their sessions at their next
  request (:meth:`User.stamp`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import argon2

from egoindex.core.fsutil import atomic_open
from egoindex.errors import AccessError
from egoindex.serve.scopes import Scope
from egoindex.store.layout import META_FILE
from egoindex.store.objectstore import S3Location, is_remote, local_dir

FORMAT = "egoindex-users"
VERSION = 1
ROLES = ("admin", "user")
#: Under a store: the users file, the audit log and their lock live here (mode 0700).
ACCESS_DIR = "_access"
USERS_FILE = "users.json"
AUDIT_FILE = "audit.jsonl"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
TOKEN_PREFIX = "egx_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

_hasher = argon2.PasswordHasher()  # argon2id, argon2-cffi's RFC 9106 "low memory" profile


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def access_dir(store: Path) -> Path:
    return Path(store) / ACCESS_DIR


def users_path(store_or_file: str | Path) -> Path:
    """The users file meant by ``STORE_OR_FILE``: ``STORE/_access/users.json`` for a store folder, the
    path itself for a ``.json`` file. For an ``s3://`` store it is the store's local folder's
    ``_access/users.json`` (access files never leave the machine; the one ``egoindex serve`` reads).
    Anything else is an AccessError saying which to give."""
    if is_remote(store_or_file):
        return access_dir(local_dir(S3Location.parse(str(store_or_file)))) / USERS_FILE
    p = Path(store_or_file)
    if p.is_dir():
        if not (p / META_FILE).is_file():
            raise AccessError(f"{p} is a folder but not an egoindex store (no {META_FILE}); give a store folder "
                              "or a users .json file")
        return access_dir(p) / USERS_FILE
    if p.suffix.lower() == ".json":
        return p
    raise AccessError(f"{p} is neither a store folder nor a users .json file")


def audit_path(store: Path) -> Path:
    """Where ``serve`` appends its audit log for a store: ``STORE/_access/audit.jsonl``."""
    return access_dir(store) / AUDIT_FILE


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AccessError(f"user name {name!r} is not allowed: 1-64 letters, digits and . _ @ -, starting with a "
                          "letter or digit")
    return name


def hash_password(password: str) -> str:
    """The argon2id hash of a password (too short or too long: AccessError saying the bounds)."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccessError(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return _hasher.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    """Whether ``password`` matches ``hashed``; a user without a password (token only) never matches.
    Always pays one argon2 verification, so a wrong user name takes as long as a wrong password."""
    if not hashed:
        return verify_unknown(password)
    try:
        return _hasher.verify(hashed, password[:MAX_PASSWORD + 1])
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def verify_unknown(password: str) -> bool:
    """What a login with an unknown user name costs: one argon2 verification, always False."""
    try:
        _hasher.verify(_dummy_hash(), password[:MAX_PASSWORD + 1])
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        pass
    return False


_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _dummy[0]


def new_token() -> str:
    """A new API token (``egx_`` + 256 random bits): shown once, stored as its SHA-256."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class User:
    """One account: ``role`` admin (every video, the service endpoints) or user (their ``scope``)."""

    name: str
    role: str
    scope: Scope
    password_hash: str | None = None
    token_sha256: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def stamp(self) -> str:
        """A fingerprint of what a session was granted on: a session whose user's stamp changed
        (password, token, role or scope) is over."""
        doc = json.dumps([self.role, self.scope.as_dict(), self.password_hash, self.token_sha256], sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:32]

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "scope": self.scope.as_dict(), "password": self.password_hash,
                "token_sha256": self.token_sha256, "created_at": self.created_at, "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> User:
        if not isinstance(d, Mapping):
            raise AccessError(f"user {name!r}: expected a JSON object")
        role = d.get("role")
        return make_user(check_name(name), role if isinstance(role, str) else repr(role),
                         Scope.from_dict(d.get("scope") or {}), password_hash=d.get("password") or None,
                         token_sha256=d.get("token_sha256") or None, created_at=str(d.get("created_at") or ""),
                         updated_at=str(d.get("updated_at") or ""))

    def public(self) -> dict[str, Any]:
        """What ``users list`` shows: never a hash."""
        return {"name": self.name, "role": self.role, "scope": self.scope.describe(),
                "password": bool(self.password_hash), "token": bool(self.token_sha256),
                "created_at": self.created_at, "updated_at": self.updated_at}


def make_user(name: str, role: str, scope: Scope, **kw: Any) -> User:
    """A checked :class:`User`: a known role; an admin sees every video (a scoped admin is refused);
    at least one credential."""
    if role not in ROLES:
        raise AccessError(f"role must be one of {', '.join(ROLES)}, not {role}")
    if role == "admin" and not scope.all_videos:
        raise AccessError("an admin sees every video: give scope limits to role user only")
    user = User(check_name(name), role, scope, **kw)
    if not (user.password_hash or user.token_sha256):
        raise AccessError(f"user {name} has neither a password nor an API token")
    if user.token_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", user.token_sha256):
        raise AccessError(f"user {name}: token_sha256 must be 64 hex digits")
    return user


class UsersFile:
    """The users file at ``path``: read (and re-read when it changes) by the server, changed by
    ``egoindex users`` under an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}
        self._by_token: dict[str, User] = {}

    # ---- reading ------------------------------------------------------------------------------
    def load(self) -> dict[str, User]:
        """Every user, read now; a missing file is no users, a damaged one an AccessError."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise AccessError(f"cannot read the users file {self.path}: {e}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise AccessError(f"the users file {self.path} is not valid JSON ({e}); restore it or remove it and "
                              "add the users again") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise AccessError(f"{self.path} is not an egoindex users file (format {FORMAT}, version {VERSION})")
        users = doc.get("users")
        if not isinstance(users, dict):
            raise AccessError(f"{self.path}: 'users' must be an object")
        try:
            return {name: User.from_dict(name, d) for name, d in users.items()}
        except AccessError as e:
            raise AccessError(f"{self.path}: {e}") from None

    def current(self) -> dict[str, User]:
        """The users as the file says now (re-read only when its inode, size or mtime changed).
        A file that became unreadable or damaged keeps nobody logged in: deny, don't guess."""
        try:
            st = self.path.stat()
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            key = None
        with self._lock:
            if key != self._seen:
                try:
                    users = self.load()
                except AccessError:
                    users = {}
                    key = None  # try again at the next request
                self._users = users
                self._by_token = {u.token_sha256: u for u in users.values() if u.token_sha256}
                self._seen = key
            return self._users

    def by_token(self, token: str) -> User | None:
        digest = token_digest(token)
        self.current()
        with self._lock:
            return self._by_token.get(digest)

    # ---- changing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if self.path.parent.name == ACCESS_DIR:
                os.chmod(self.path.parent, 0o700)
        with open(self.path.parent / f".{self.path.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, users: dict[str, User]) -> None:
        doc = {"format": FORMAT, "version": VERSION, "users": {n: users[n].as_dict() for n in sorted(users)}}
        with atomic_open(self.path, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")

    def put(self, user: User, *, replace_existing: bool = False) -> User:
        """Add ``user`` (or replace them with ``replace_existing``; the creation time is kept)."""
        with self._locked():
            users = self.load()
            old = users.get(user.name)
            if old is not None and not replace_existing:
                raise AccessError(f"user {user.name} exists already in {self.path}; use --replace to change them")
            stamp = now_iso()
            user = replace(user, created_at=old.created_at if old else stamp, updated_at=stamp)
            if user.token_sha256 and any(u.token_sha256 == user.token_sha256 for n, u in users.items()
                                         if n != user.name):
                raise AccessError("that API token belongs to another user")
            users[user.name] = user
            self._write(users)
            return user

    def remove(self, name: str) -> User:
        with self._locked():
            users = self.load()
            if name not in users:
                raise AccessError(f"no user {name!r} in {self.path} (egoindex users list shows who there is)")
            gone = users.pop(name)
            self._write(users)
            return gone
