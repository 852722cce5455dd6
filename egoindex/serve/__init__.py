"""``egoindex serve``: an HTTP API and a local web page over a store (see :mod:`egoindex.serve.app`).

``create_app`` loads lazily: ``egoindex users`` and ``egoindex audit`` use this package's users
file and audit log modules without paying for FastAPI (``egoindex --help`` loads no web framework).
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from egoindex.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'egoindex.serve' has no attribute {name!r}")
