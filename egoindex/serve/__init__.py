"""``egoindex serve``: an HTTP API and a local web page over a store (see :mod:`egoindex.serve.app`)."""

from egoindex.serve.app import create_app

__all__ = ["create_app"]
