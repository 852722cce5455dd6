"""``egoindex serve STORE``: the HTTP API and web page of :mod:`egoindex.serve` under uvicorn.

Loopback by default: the API streams the store's source videos and accepts uploads, so reaching
it from another machine is a decision the user makes explicitly with ``--host``, and one that
needs a login (a users file, ``egoindex users add``) and TLS or ``--insecure-http``
(:func:`egoindex.serve.bind.check_bind`). With a users file, login is on whatever the address.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from egoindex.cli.common import err_console, open_store
from egoindex.errors import ConfigError, ServeError, StoreError
from egoindex.serve.bind import check_bind, is_loopback
from egoindex.serve.users import USERS_FILE, access_dir, audit_path
from egoindex.store.layout import StoreLayout

__all__ = ["is_loopback", "register", "serve"]


def serve(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX."),
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
    model: Optional[Path] = typer.Option(None, "--model", help="A fine-tuned classifier (`egoindex finetune` OUT/best.pt): "
                               "the page's \"classify a video\" uses it when no labels are typed."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    users: Optional[Path] = typer.Option(None, "--users", help="Users file (default STORE/_access/users.json when it "
                                         "exists): when there is one, everything but /health needs a login."),
    audit_log: Optional[Path] = typer.Option(None, "--audit-log", help="Where to append the audit log (default "
                                             "STORE/_access/audit.jsonl); written whenever login is on."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="TLS certificate (PEM): serve HTTPS."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="The certificate's private key (PEM)."),
    insecure_http: bool = typer.Option(False, "--insecure-http", help="Allow a non-loopback --host without TLS "
                                       "(a trusted network, or a TLS proxy in front)."),
    session_hours: float = typer.Option(8.0, "--session-hours", min=0.01, help="A login lasts this long at most."),
    max_login_failures: int = typer.Option(5, "--max-login-failures", min=1, help="Failed logins of one user "
                                           "(15 minutes) before it is locked out for 15 minutes; a client address "
                                           "gets four times as many."),
) -> None:
    """Serve a store: a search page at http://HOST:PORT/ and a JSON API (schema at /openapi.json).

    Search by text, picture or example moment with video/split/time filters, see thumbnails,
    play hits in the browser (the source video, seeked to the moment), classify an uploaded video.

    Example: egoindex serve demo/store --port 8000
    For a lab (users, scopes, TLS, audit): docs/lab.md.
    """
    import uvicorn  # uvicorn and fastapi (egoindex.serve) only when serving

    from egoindex.serve import create_app

    from egoindex.serve.auth import Access

    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    for tls_file in (tls_cert, tls_key):
        if tls_file is not None and not tls_file.is_file():
            raise ConfigError(f"no such file: {tls_file}")
    # an s3:// store keeps its access files and thumbnails on this machine (StoreLayout.local_state)
    users_file = users if users is not None else access_dir(StoreLayout(store).local_state) / USERS_FILE
    if users is not None and not users.is_file():
        raise ServeError(f"no users file at {users}; create it with `egoindex users add {users} NAME`")
    auth = users_file.is_file()
    for warning in check_bind(host, auth=auth, tls=tls_cert is not None, insecure_http=insecure_http):
        err_console.print(f"[bold red]WARNING:[/bold red] {warning}")
    s = open_store(store, device=device)
    access = Access(users_file, audit=audit_log or audit_path(s.layout.local_state), secure_cookies=tls_cert is not None,
                    session_hours=session_hours, max_user_failures=max_login_failures,
                    max_client_failures=4 * max_login_failures) if auth else None
    try:  # load the model now: the first search should not pay for it, and a missing checkpoint shows here
        s.embedder
    except StoreError as e:
        err_console.print(f"[yellow]warning:[/yellow] {e}; searches will fail, videos and thumbnails still work")
    classifier = None
    if model is not None:
        from egoindex.model.video_checkpoint import load_classifier  # torch, transformers

        classifier = load_classifier(model, device=device)
    web = create_app(s, max_upload_bytes=int(max_upload_mb * (1 << 20)), max_k=max_k, classify=classify,
                     thumb_cache_dir=s.layout.thumbs if thumb_cache else None, classifier=classifier,
                     access=access)
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if tls_cert is not None else "http"
    login = f"login on, users {users_file}, audit log {access.audit}" if access else "no login"
    err_console.print(f"egoindex serving {store} on {scheme}://{shown}:{port}/ ({login}; API schema: /openapi.json; "
                      "Ctrl-C stops)")
    uvicorn.run(web, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None)


def register(app: typer.Typer) -> None:
    """Add ``serve``."""
    app.command("serve")(serve)
