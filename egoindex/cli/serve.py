"""``egoindex serve STORE``: the HTTP API and web page of :mod:`egoindex.serve` under uvicorn.

Loopback by default: the API streams the store's source videos and accepts uploads, so reaching
it from another machine is a decision the user makes explicitly with ``--host`` (and is warned
about), not an accident of a default.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from egoindex.cli.common import err_console, open_store
from egoindex.errors import StoreError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    store: Path = typer.Argument(..., help="Store folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default; anything "
                             "else exposes the store's videos to the network)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0 = any free port)."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=0.001, help="Largest video upload "
                                        "accepted by /api/classify, in MiB."),
    max_k: int = typer.Option(100, "--max-k", min=1, max=10000, help="Largest k a client may ask for."),
    classify: bool = typer.Option(True, "--classify/--no-classify", help="Enable POST /api/classify."),
    thumb_cache: bool = typer.Option(True, "--thumb-cache/--no-thumb-cache",
                                     help="Also cache thumbnails on disk in STORE/_thumbs."),
    device: str = typer.Option("cpu", "--device", help="Where to embed queries (cpu, cuda)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve a store: a search page at http://HOST:PORT/ and a JSON API (schema at /openapi.json).

    Search by text, picture or example moment with video/split/time filters, see thumbnails,
    play hits in the browser (the source video, seeked to the moment), classify an uploaded video.

    Example: egoindex serve demo/store --port 8000
    """
    import uvicorn  # uvicorn and fastapi (egoindex.serve) only when serving

    from egoindex.serve import create_app

    if not is_loopback(host):
        err_console.print(f"[bold red]WARNING:[/bold red] binding {host}: anyone who can reach this address can "
                          "search the store, watch its source videos and upload files. There is no authentication; "
                          "put it behind an authenticating proxy or use --host 127.0.0.1.")
    s = open_store(store, device=device)
    try:  # load the model now: the first search should not pay for it, and a missing checkpoint shows here
        s.embedder
    except StoreError as e:
        err_console.print(f"[yellow]warning:[/yellow] {e}; searches will fail, videos and thumbnails still work")
    web = create_app(s, max_upload_bytes=int(max_upload_mb * (1 << 20)), max_k=max_k, classify=classify,
                     thumb_cache_dir=(s.root / "_thumbs") if thumb_cache else None)
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"egoindex serving {store} on http://{shown}:{port}/ (API schema: /openapi.json; Ctrl-C stops)")
    uvicorn.run(web, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def register(app: typer.Typer) -> None:
    """Add ``serve``."""
    app.command("serve")(serve)
