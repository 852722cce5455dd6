"""``create_app(store)``: the HTTP API and local web page of ``egoindex serve``.

Safe by default, because a server answers whoever can reach it:

* filters from the network are structured only (video uids, split, time range, speakers, children,
  age range) and become quoted
  SQL in :class:`~egoindex.store.Filters`; the raw ``where`` of local callers has no parameter;
* every input is bounded: query length and k (422), request bodies (FastAPI's ``max_body_size``
  counts the bytes as they stream in, whatever Content-Length claims: 413), uploaded files
  (counted again while copied: 413), image pixels (422);
* files: only a known video's own source file, inside the store's ``videos_root``
  (:func:`~egoindex.serve.media.resolve_video`); no request names a path;
* errors: bad input is a 4xx with a sentence saying what was wrong; anything unexpected is a 500
  that says only that it was logged, never a traceback;
* access (``access=``, :mod:`egoindex.serve.access`): with a users file every route but ``/health``
  and the login page needs a login, and every read of the store goes through the user's
  :class:`~egoindex.serve.gate.Gate` (their scope ANDed into searches, rows, thumbnails, videos).

No ``from __future__ import annotations`` here: the parameter types are built inside
``create_app`` (their bounds are its arguments), and FastAPI must evaluate them at definition time.

Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, so the CPU-bound model
and decoding work never blocks the event loop (``Store`` is thread-safe for searches).
"""

import io
import json
import logging
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from collections.abc import Sequence
from typing import Annotated, Any, BinaryIO, NamedTuple
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Path as PathParam, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from egoindex.version import __version__
from egoindex.classify import classify_video
from egoindex.classify.finetuned import classify_with_model
from egoindex.errors import ClassifyError, VideoError
from egoindex.serve.access import install_access
from egoindex.serve.live import GONE, LiveStore
from egoindex.serve.auth import Access
from egoindex.serve.media import MediaRequestError, Thumbnails, resolve_video, video_response
from egoindex.serve.metrics import Metrics, MetricsMiddleware
from egoindex.serve.models import (ClassifyOut, ErrorOut, HealthOut, HitOut, InfoOut, Level, MetricsOut, SearchOut,
                                   TranscriptOut, UtteranceOut, VideoOut)
from egoindex.store import Filters, Hit, Store, StoreError
from egoindex.store.moments import Moment
from egoindex.store.store import parse_like

log = logging.getLogger("egoindex.serve")

STATIC_DIR = Path(__file__).with_name("static")
MiB = 1 << 20
#: Room for the multipart framing and the small form fields around an uploaded file.
FORM_OVERHEAD = 256 * 1024
#: Non-upload requests carry no meaningful body.
MAX_PLAIN_BODY = 64 * 1024
MAX_VIDEO_FILTERS = 200
MAX_IMAGE_PIXELS = 64_000_000
#: The widest merge gap a request may ask for (seconds).
MAX_GAP = 60.0
#: The page's own Content-Security-Policy: everything from this server, nothing inline or remote.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")

ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut, "description": "Invalid input (says why)."}}
#: Uploads can also fail before validation: a body that is not multipart/form-data at all (400).
FORM_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 400: {"model": ErrorOut, "description": "The body is not valid multipart/form-data."}}
#: The store's model or tables are unusable (a checkpoint gone): the server's problem, not the request's.
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": ErrorOut, "description": "The store is unavailable."}}
REDACTED: dict[int | str, dict[str, Any]] = {GONE: {"model": ErrorOut, "description": "Redacted (`egoindex redact`): the moment is in a removed range, or the video still holds one in its source file."}}


class SecurityHeaders:
    """Adds nosniff/no-referrer/frame headers to every response and the CSP to the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope.get("path", "") in ("/", "/login") or scope.get("path", "").startswith("/static/")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                if page:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)


def create_app(store: Store, *, max_upload_bytes: int = 200 * MiB, max_image_bytes: int = 20 * MiB,
               max_query_chars: int = 500, max_k: int = 100, classify: bool = True,
               thumb_cache_dir: Path | None = None, max_classify_jobs: int = 1, classifier: Any = None,
               access: Access | None = None) -> FastAPI:
    """The FastAPI app serving ``store`` (shared by all requests).

    ``thumb_cache_dir``: also keep thumbnails on disk there (the CLI uses ``STORE/_thumbs``);
    None keeps them in memory only, which leaves the store folder untouched.
    ``classify``: expose ``POST /api/classify`` (videos uploaded for zero-shot classification).
    ``classifier``: a fine-tuned classifier (``egoindex.model.video_checkpoint.load_classifier``);
    an upload without labels is then classified by it instead of zero-shot.
    ``access``: require a login (users file, sessions, audit log; docs/lab.md); None serves everyone.

    The server follows its store folder (:class:`~egoindex.serve.live.LiveStore`): before each
    request it reopens the store when a build or a redaction changed it, and it never returns a
    hit, thumbnail or video byte of a redacted range, also while the redaction still runs.
    """
    live = LiveStore(store)
    store = live  # type: ignore[assignment]  # every handler reads the current store through it
    app = FastAPI(
        title="egoindex",
        version=__version__,
        summary="Search an egocentric video store by text, image or example moment; play the hits.",
        max_body_size=MAX_PLAIN_BODY,
        # Swagger UI and ReDoc would load from a CDN: nothing offline, and against the page's
        # everything-from-here policy. The schema itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(lambda: live.refresh())],  # sync: run in the thread pool, like the handlers
    )
    metrics = Metrics()
    thumbs = Thumbnails(live, cache_dir=thumb_cache_dir, hidden=live.hidden)
    classify_slots = threading.BoundedSemaphore(max(1, max_classify_jobs))
    app.state.store, app.state.metrics, app.state.thumbs = store, metrics, thumbs
    gate = app.state.gate = install_access(app, store, access)  # first: the innermost middleware
    app.state.live = live

    def forget() -> None:  # the store changed: scopes are resolved again, cached thumbnails re-checked
        gate.forget()
        thumbs.forget(live.hidden, uids=live.blackouts.uids)

    live.on_change(forget)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)

    def filters_of(video: list[str], split: str | None, start: float | None, end: float | None,
                   who: Who | None = None) -> Filters:
        """Structured filters from request fields; unknown videos and empty ranges are 422."""
        who = who or Who()
        if len(video) > MAX_VIDEO_FILTERS:
            raise HTTPException(422, f"at most {MAX_VIDEO_FILTERS} video filters")
        if max(len(who.speaker), len(who.child)) > MAX_VIDEO_FILTERS:
            raise HTTPException(422, f"at most {MAX_VIDEO_FILTERS} speaker or child filters")
        uids = tuple(dict.fromkeys(v for v in video if v))
        unknown = [v for v in uids if not gate.sees(v)]  # outside the user's scope reads as unknown
        if unknown:
            raise HTTPException(422, f"unknown video {unknown[0]!r} in the video filter")
        if start is not None and end is not None and start > end:
            raise HTTPException(422, f"the time range is empty: start {start} is after end {end}")
        f = Filters(uids, split or None, start, end, speakers=tuple(dict.fromkeys(x for x in who.speaker if x)),
                    child_ids=tuple(dict.fromkeys(x for x in who.child if x)), min_age_days=who.age_min,
                    max_age_days=who.age_max)
        try:
            f.sql("clips")  # quoting refuses control characters, non-finite times, an empty age range
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        return f

    def run_search(asked: dict[str, Any], level: str, k: int, filters: Filters, ranking: Ranking,
                   **query: Any) -> SearchOut:
        t0 = time.perf_counter()
        if "text" in query or "image" in query:  # these need the model; a moment (like) does not
            try:
                store.embedder
            except StoreError as e:  # the server's problem (checkpoint gone), not the request's
                raise HTTPException(503, f"searching by text or image needs the store's model: {e}") from None
        scoped = gate.restrict(filters)  # the user's scope ANDed in; None: nothing can match
        try:
            hits = [] if scoped is None else live.hits(gate.hits(store.search(
                level=level, k=k, filters=scoped, merge=ranking.merge, min_score=ranking.min_score, gap=ranking.gap,
                **query)))
        except (StoreError, ValueError) as e:
            raise HTTPException(422, str(e)) from None
        asked = {**asked, "video": list(filters.video_uids), "split": filters.split, "start": filters.start,
                 "end": filters.end, "speaker": list(filters.speakers), "child": list(filters.child_ids),
                 "age_min": filters.min_age_days, "age_max": filters.max_age_days, "min_score": ranking.min_score,
                 "gap": ranking.gap}
        return SearchOut(query=asked, level=level, k=k, merged=ranking.merge, count=len(hits),
                         elapsed_ms=round((time.perf_counter() - t0) * 1000, 3), hits=[hit_out(h) for h in hits])

    # ---- shared parameter types -----------------------------------------------------------------
    QText = Annotated[str, Query(min_length=1, max_length=max_query_chars, description="What to look for.")]
    QLevel = Annotated[Level, Query(description="Which rows to rank.")]
    QK = Annotated[int, Query(ge=1, le=max_k, description="Number of results.")]
    QVideo = Annotated[list[str], Query(description="Only these videos (repeatable).")]
    QSplit = Annotated[str | None, Query(max_length=64, description="Only this split (train / val).")]
    QStart = Annotated[float | None, Query(allow_inf_nan=False, description="Only moments ending after this (s).")]
    QEnd = Annotated[float | None, Query(allow_inf_nan=False, description="Only moments starting before this (s).")]
    QMerge = Annotated[bool, Query(description="Merge overlapping or adjacent hits of one video into one moment "
                                               "(false: raw rows).")]
    QMinScore = Annotated[float | None, Query(ge=-1, le=1, allow_inf_nan=False,
                                              description="Leave out rows scoring below this (cosine, -1 ... 1).")]
    QGap = Annotated[float | None, Query(ge=0, le=MAX_GAP, allow_inf_nan=False,
                                         description="Merge rows this many seconds apart too (default: 0 for clips "
                                                     "and utterances, one frame interval for frames).")]
    QSpeaker = Annotated[list[str], Query(description="Only rows of these speakers (repeatable; e.g. FEM, MAL).")]
    QChild = Annotated[list[str], Query(description="Only videos of these children (repeatable; the participants' "
                                                    "child_id).")]
    QAgeMin = Annotated[int | None, Query(ge=0, description="Only videos recorded at this age (days) or older.")]
    QAgeMax = Annotated[int | None, Query(ge=0, description="Only videos recorded at this age (days) or younger.")]

    # ---- service ----------------------------------------------------------------------------------
    @app.get("/health", response_model=HealthOut, tags=["service"], responses=UNAVAILABLE)
    def health() -> HealthOut:
        """Liveness plus what is served: the store, its model and row counts."""
        try:
            rows = {name: store.count_rows(name) for name in ("frames", "clips", "utterances", "videos")}
        except StoreError as e:
            raise HTTPException(503, "the store is unavailable" if gate.enforced else str(e)) from None
        if gate.enforced:  # anyone may ask: say nothing private
            return HealthOut(ok=True, auth=True, classify=classify)
        return HealthOut(ok=True, store=store.location, model=store.model_name, rows=rows, classify=classify,
                         version=__version__, classifier=list(classifier.classes) if classifier is not None else None)

    @app.get("/metrics", response_model=MetricsOut, tags=["service"])
    def get_metrics() -> MetricsOut:
        """Requests, client and server errors, and latency p50/p99 per endpoint since start."""
        return MetricsOut(**metrics.snapshot(), thumbnails_cached=len(thumbs.memory))

    @app.get("/api/info", response_model=InfoOut, tags=["store"], responses=UNAVAILABLE)
    def info() -> InfoOut:
        """What built the store (model, checkpoint, clip windows) and its tables and indexes."""
        try:
            return InfoOut(**store.info())
        except StoreError as e:
            raise HTTPException(503, str(e)) from None

    @app.get("/api/videos", response_model=list[VideoOut], tags=["store"])
    def videos() -> list[VideoOut]:
        """Every video of the store (for filters and players), by source path."""
        rows = sorted(live.video_rows(gate.video_rows()), key=lambda r: str(r.get("source")))
        speakers = store.video_speakers
        return [VideoOut(**{**{k: r.get(k) for k in VideoOut.model_fields},
                            "participant": json.loads(r["participant"]) if r.get("participant") else None,
                            "speakers": gate.speakers(speakers.get(r["video_uid"], []))}) for r in rows]

    # ---- search -------------------------------------------------------------------------------------
    @app.get("/api/search", response_model=SearchOut, tags=["search"], responses={**ERRORS, **UNAVAILABLE})
    def search_text(q: QText, level: QLevel = "clips", k: QK = 10, video: QVideo = [], split: QSplit = None,
                    start: QStart = None, end: QEnd = None, merge: QMerge = True, min_score: QMinScore = None,
                    gap: QGap = None, speaker: QSpeaker = [], child: QChild = [], age_min: QAgeMin = None,
                    age_max: QAgeMax = None) -> SearchOut:
        """Text search; the filters apply before ranking, so k results come back when k rows (or,
        merged, k moments) match. Merged, no two hits of one video overlap."""
        if not q.strip():
            raise HTTPException(422, "the query text is empty")
        return run_search({"q": q}, level, k,
                          filters_of(video, split, start, end, Who(speaker, child, age_min, age_max)),
                          Ranking(merge, min_score, gap), text=q)

    @app.get("/api/search/like", response_model=SearchOut, tags=["search"],
             responses={**ERRORS, 404: {"model": ErrorOut, "description": "Unknown video."}, **REDACTED})
    def search_like(moment: Annotated[str, Query(max_length=200, description="VIDEO_UID@SECONDS")],
                    level: QLevel = "clips", k: QK = 10, video: QVideo = [], split: QSplit = None,
                    start: QStart = None, end: QEnd = None, merge: QMerge = True, min_score: QMinScore = None,
                    gap: QGap = None, speaker: QSpeaker = [], child: QChild = [], age_min: QAgeMin = None,
                    age_max: QAgeMax = None) -> SearchOut:
        """More like this moment: its neighbourhood in the store ranks the rest (itself excluded)."""
        try:
            uid, at = parse_like(moment)
        except StoreError as e:
            raise HTTPException(422, str(e)) from None
        if not gate.sees(uid):
            raise HTTPException(404, f"unknown video {uid!r}")
        gate.check_moment(uid, at)
        live.check_moment(uid, at)
        return run_search({"moment": moment}, level, k,
                          filters_of(video, split, start, end, Who(speaker, child, age_min, age_max)),
                          Ranking(merge, min_score, gap), like=moment)

    @app.post("/api/search/image", response_model=SearchOut, tags=["search"],
              max_body_size=max_image_bytes + FORM_OVERHEAD,
              responses={**FORM_ERRORS, **UNAVAILABLE, 413: {"model": ErrorOut, "description": "Image too large."}})
    def search_image(image: Annotated[UploadFile, File(description="A picture (JPEG, PNG, WebP ...).")],
                     level: Annotated[Level, Form()] = "clips",
                     k: Annotated[int, Form(ge=1, le=max_k)] = 10,
                     video: Annotated[list[str], Form()] = [],
                     split: Annotated[str | None, Form(max_length=64)] = None,
                     start: Annotated[float | None, Form(allow_inf_nan=False)] = None,
                     end: Annotated[float | None, Form(allow_inf_nan=False)] = None,
                     merge: Annotated[bool, Form()] = True,
                     min_score: Annotated[float | None, Form(ge=-1, le=1, allow_inf_nan=False)] = None,
                     gap: Annotated[float | None, Form(ge=0, le=MAX_GAP, allow_inf_nan=False)] = None,
                     speaker: Annotated[list[str], Form()] = [],
                     child: Annotated[list[str], Form()] = [],
                     age_min: Annotated[int | None, Form(ge=0)] = None,
                     age_max: Annotated[int | None, Form(ge=0)] = None) -> SearchOut:
        """Search by an uploaded picture, with the same filters and merging as text search."""
        data = image.file.read(max_image_bytes + 1)
        if len(data) > max_image_bytes:
            raise HTTPException(413, f"the image is larger than {human_bytes(max_image_bytes)}")
        filters = filters_of(video, split, start, end, Who(speaker, child, age_min, age_max))
        return run_search({"image": image.filename or "upload"}, level, k, filters, Ranking(merge, min_score, gap),
                          image=open_image(data))

    @app.get("/api/videos/{video_uid}/transcript", response_model=TranscriptOut, tags=["store"],
             responses={404: {"model": ErrorOut, "description": "Unknown video."}, **ERRORS, **REDACTED})
    def transcript(video_uid: Annotated[str, PathParam(max_length=200)]) -> TranscriptOut:
        """A video's utterances with their times (the store's utterances table), for a timeline
        beside the player; empty when the video has no kept speech."""
        v = store.videos.get(video_uid) if gate.sees(video_uid) else None
        if v is None:
            raise HTTPException(404, f"unknown video {video_uid!r}")
        live.check_video(video_uid)
        lines = live.utterances(video_uid, gate.utterances(store.transcript(video_uid)))  # less redacted lines
        return TranscriptOut(video_uid=video_uid, source=str(v.get("source") or ""), duration=v.get("duration"),
                             utterances=[UtteranceOut(**u.as_dict()) for u in lines])

    # ---- media --------------------------------------------------------------------------------------
    @app.get("/api/thumb/{video_uid}", tags=["media"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG of the frame on screen at t."},
                        404: {"model": ErrorOut, "description": "Unknown video."}, **REDACTED})
    def thumb(video_uid: Annotated[str, PathParam(max_length=200)],
              t: Annotated[float, Query(ge=0, allow_inf_nan=False, description="Seconds into the video.")] = 0.0
              ) -> Response:
        """A small JPEG of the moment (cached in memory, and on disk when the server has a cache folder)."""
        gate.check_moment(video_uid, t)
        live.check_moment(video_uid, t)
        jpeg = thumbs.get(video_uid, t)  # it refuses a decode time in a range too (live.hidden)
        cache = "private, max-age=3600" if gate.enforced else "public, max-age=86400"  # no shared caches
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": cache})

    @app.get("/api/video/{video_uid}", tags=["media"], response_class=Response,
             responses={200: {"content": {"video/*": {}}, "description": "The whole source video."},
                        206: {"content": {"video/*": {}}, "description": "The asked byte range."},
                        404: {"model": ErrorOut, "description": "Unknown video or missing file."},
                        416: {"model": ErrorOut, "description": "Range not satisfiable."}, **REDACTED})
    def video(video_uid: Annotated[str, PathParam(max_length=200)],
              range_: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
              if_range: Annotated[str | None, Header(alias="If-Range", max_length=200)] = None) -> Response:
        """The source video of a known uid, with byte ranges so players can seek."""
        gate.check_stream(video_uid)
        live.check_stream(video_uid)
        return video_response(resolve_video(store, video_uid), range_, if_range)

    # ---- classify -----------------------------------------------------------------------------------
    if classify:
        @app.post("/api/classify", response_model=ClassifyOut, tags=["classify"],
                  max_body_size=max_upload_bytes + FORM_OVERHEAD,
                  responses={**FORM_ERRORS, 413: {"model": ErrorOut, "description": "Video too large."},
                             503: {"model": ErrorOut, "description": "Busy with other classifications."}})
        def classify_upload(video: Annotated[UploadFile, File(description="The video to classify.")],
                            labels: Annotated[str, Form(max_length=20_000, description="Comma-separated labels.")] = "",
                            top_k: Annotated[int, Form(ge=1, le=100)] = 5) -> dict[str, Any]:
            """Zero-shot classification of an uploaded video against the given labels; without labels, by the
            fine-tuned classifier the server was started with (``serve --model``)."""
            with tempfile.TemporaryDirectory(prefix="egoindex-upload-") as tmp:
                path = Path(tmp) / ("upload" + safe_suffix(video.filename))
                copy_bounded(video.file, path, max_upload_bytes)
                if not classify_slots.acquire(timeout=30):
                    raise HTTPException(503, "busy classifying other videos; retry in a minute")
                try:
                    if classifier is not None and not labels.strip():
                        result = classify_with_model(classifier, path, top_k=top_k)
                    else:
                        result = classify_video(store, path, labels or None, top_k=top_k)
                except (ClassifyError, VideoError, StoreError) as e:
                    name = video.filename or "the upload"
                    msg = str(e).replace(str(path), name).replace(path.name, name)  # no server paths
                    raise HTTPException(422, f"cannot classify {name}: {msg}") from None
                finally:
                    classify_slots.release()
            out = result.as_dict()
            out["video"] = video.filename or "upload"  # not the server's temporary path
            return out

    # ---- the page -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


# ---- helpers ------------------------------------------------------------------------------------------

class Who(NamedTuple):
    """The speaker and participant filters of a request (``speaker``, ``child``, ``age_min``, ``age_max``)."""

    speaker: Sequence[str] = ()
    child: Sequence[str] = ()
    age_min: int | None = None
    age_max: int | None = None


class Ranking(NamedTuple):
    """How a search's rows become results: merged into moments or raw, a score threshold, the gap."""

    merge: bool = True
    min_score: float | None = None
    gap: float | None = None


def hit_out(h: Hit) -> HitOut:
    """A store hit (or moment) plus this server's URLs for its thumbnail (mid-row, the best row's
    for a moment) and source video."""
    d = h.as_dict()
    uid = quote(h.video_uid, safe="")
    lo, hi = (h.best_start, h.best_end) if isinstance(h, Moment) else (h.start, h.end)
    t = lo if h.level == "frames" else (lo + hi) / 2
    d["thumb"] = f"/api/thumb/{uid}?t={t:.2f}"
    d["video"] = f"/api/video/{uid}"
    return HitOut(**{k: v for k, v in d.items() if k in HitOut.model_fields})


def open_image(data: bytes) -> Image.Image:
    """Decode an uploaded picture to RGB; anything that is not a sane image is a 422."""
    if not data:
        raise HTTPException(422, "the image upload is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise HTTPException(422, f"the image has {im.width}x{im.height} pixels, more than "
                                         f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels")
            return im.convert("RGB")
    except HTTPException:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise HTTPException(422, f"cannot read the upload as an image: {e}") from None


def human_bytes(n: int) -> str:
    """``20 MiB``, ``64 KiB``, ``900 bytes``: limits as people write them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def safe_suffix(filename: str | None) -> str:
    """The upload's extension when it is plain (decoders may use it as a hint), else ``.bin``."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if _SUFFIX.match(suffix) else ".bin"


def copy_bounded(src: BinaryIO, dst: Path, limit: int, chunk: int = MiB) -> int:
    """Copy an upload to ``dst`` counting bytes; more than ``limit`` is a 413 (whatever the client
    declared)."""
    n = 0
    with open(dst, "wb") as out:
        while block := src.read(chunk):
            n += len(block)
            if n > limit:
                raise HTTPException(413, f"the upload is larger than {human_bytes(limit)}")
            out.write(block)
    return n


def _install_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"detail": ...}``; unexpected ones logged with an id and never echoed."""

    @app.exception_handler(MediaRequestError)
    async def media_error(request: Request, exc: MediaRequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 413 and detail == "Content Too Large":  # FastAPI's body limit
            limit = request.scope.get("starlette.max_body_size")
            detail = "the request body is too large" + (f" (limit {human_bytes(limit)})" if limit else "")
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back; an oversized query would come back whole.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("unexpected error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error (logged as {ref})"}, status_code=500)

