"""Per-endpoint request counts, error counts and latency percentiles (``GET /metrics``).

Why a raw ASGI middleware rather than ``@app.middleware("http")``: it sees the response status as
it is sent (streamed video and thumbnails included) without buffering bodies, and it records
requests that end in an unhandled exception as 500s before the exception reaches the catch-all.

Endpoints are keyed by their route *template* (``GET /api/thumb/{video_uid}``), never by the raw
path, so arbitrary URLs cannot grow the table: everything that matches no route is ``unmatched``.
Latency percentiles are computed over the most recent ``window`` requests of each endpoint (the
counts are since start); a bounded window keeps memory flat on a long-running server.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """Thread-safe counters; one instance per app."""

    def __init__(self, window: int = 4096) -> None:
        self.started = time.time()
        self._window = window
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._client_errors: dict[str, int] = {}
        self._server_errors: dict[str, int] = {}
        self._latency: dict[str, deque[float]] = {}

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[endpoint] = self._counts.get(endpoint, 0) + 1
            if 400 <= status < 500:
                self._client_errors[endpoint] = self._client_errors.get(endpoint, 0) + 1
            elif status >= 500:
                self._server_errors[endpoint] = self._server_errors.get(endpoint, 0) + 1
            self._latency.setdefault(endpoint, deque(maxlen=self._window)).append(seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            endpoints = {}
            for name, n in sorted(self._counts.items()):
                lat = np.asarray(self._latency.get(name, ()), np.float64) * 1000.0
                endpoints[name] = {
                    "requests": n,
                    "client_errors": self._client_errors.get(name, 0),
                    "server_errors": self._server_errors.get(name, 0),
                    "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                    "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
                }
            return {
                "uptime_s": round(time.time() - self.started, 3),
                "requests": sum(self._counts.values()),
                "client_errors": sum(self._client_errors.values()),
                "server_errors": sum(self._server_errors.values()),
                "latency_window": self._window,
                "endpoints": endpoints,
            }


def endpoint_name(scope: Scope) -> str:
    """``METHOD /route/{template}`` of a request after routing, or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not path:
        return "unmatched"
    return f"{scope.get('method', 'GET')} {path}"


class MetricsMiddleware:
    """Times every HTTP request and records it in ``metrics`` under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.record(endpoint_name(scope), status, time.perf_counter() - t0)
