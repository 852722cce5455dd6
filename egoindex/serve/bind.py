"""Where ``egoindex serve`` may listen, decided before anything is bound.

The rule (docs/lab.md): loopback may be served without authentication (one person on their own
machine; the CLI warns), anything else only with authentication on, and, since passwords and
session cookies would otherwise cross the network in clear, only with TLS (``--tls-cert`` /
``--tls-key``) unless the user says ``--insecure-http`` (a network they trust, or a TLS proxy
in front).
"""

from __future__ import annotations

import ipaddress

from egoindex.errors import ServeError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, auth: bool, tls: bool, insecure_http: bool = False) -> list[str]:
    """Warnings for binding ``host``; a ServeError (saying what to do) for a bind that is refused."""
    if is_loopback(host):
        if auth:
            return []
        return ["no users file, so there is no login: anyone who can connect to this machine's loopback can search "
                "the store and watch its videos. Add users with `egoindex users add STORE NAME` to require one."]
    if not auth:
        raise ServeError(f"binding {host} would let anyone who can reach it search the store and watch its videos: "
                         "add a user first (`egoindex users add STORE NAME --role admin --all-videos`), or bind "
                         "127.0.0.1")
    if not tls and not insecure_http:
        raise ServeError(f"binding {host} without TLS sends passwords and session cookies in clear: give --tls-cert "
                         "and --tls-key, or --insecure-http on a network you trust (or behind a TLS proxy)")
    if not tls:
        return [f"serving {host} over plain HTTP (--insecure-http): passwords and session cookies cross the "
                "network unencrypted"]
    return []
