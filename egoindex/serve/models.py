"""Pydantic models of the HTTP API's answers: they are the OpenAPI schema clients are generated from,
and they keep a response from carrying fields nobody documented."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["clips", "frames", "utterances"]


class ErrorOut(BaseModel):
    """Every error: a sentence saying what was wrong (a list of field errors for invalid parameters)."""

    detail: str | list[dict[str, Any]]


class HealthOut(BaseModel):
    """Liveness. With login on (``auth``), only ``ok``, ``auth`` and ``classify``: nothing private
    (no store path, model or row counts) goes to someone who has not logged in."""

    ok: bool
    auth: bool = Field(False, description="Whether the server requires a login (then the other fields are null).")
    store: str | None = None
    model: str | None = None
    rows: dict[str, int] | None = Field(None, description="Rows per table (frames, clips, utterances, videos).")
    classify: bool = Field(description="Whether POST /api/classify is enabled.")
    version: str | None = None
    classifier: list[str] | None = Field(None, description="The classes of the fine-tuned classifier "
                                         "(`serve --model`); /api/classify uses it when no labels are given.")


class SessionOut(BaseModel):
    """The logged-in user (``GET /api/session``)."""

    user: str
    role: Literal["admin", "user"]
    scope: dict[str, Any] = Field(description="The user's scope (video uids, child ids, split, speakers, ages).")
    scope_text: str = Field(description="The scope in words.")
    csrf_token: str | None = Field(description="Send as X-CSRF-Token with every POST (null for an API token).")
    expires_at: float | None = Field(description="When the session ends at the latest (Unix time).")


class LogoutOut(BaseModel):
    ok: bool


class EndpointMetrics(BaseModel):
    requests: int
    client_errors: int
    server_errors: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None


class MetricsOut(BaseModel):
    uptime_s: float
    requests: int
    client_errors: int
    server_errors: int
    latency_window: int = Field(description="Percentiles are over this many most recent requests per endpoint.")
    endpoints: dict[str, EndpointMetrics] = Field(description="Keyed by 'METHOD /route/{template}'.")
    thumbnails_cached: int


class TableInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    rows: int
    version: int
    index: dict[str, Any] | None = None


class InfoOut(BaseModel):
    """``Store.info()``: what built the store and what it holds."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    store: str
    model: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    embed_dim: int | None = None
    egoindex_version: str | None = None
    videos_root: str | None = None
    clip_seconds: float | None = None
    clip_stride: float | None = None
    built_at: str | float | None = None
    tables: dict[str, TableInfo]


class VideoOut(BaseModel):
    video_uid: str
    source: str
    split: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    native_fps: float | None = None
    n_frames: int | None = None
    n_utterances: int | None = None
    child_id: str | None = Field(None, description="The participant: the child's id (ingest --participants).")
    age_days: int | None = Field(None, description="The child's age in days on the recording day.")
    date: str | None = Field(None, description="The recording date (YYYY-MM-DD).")
    location: str | None = None
    participant: dict[str, str] | None = Field(None, description="The participants CSV's other columns.")
    speakers: list[str] = Field([], description="The speaker labels of the video's utterances.")


class UtteranceOut(BaseModel):
    """One transcript segment of a video (seconds in the source video)."""

    utterance_id: str
    start: float
    end: float
    text: str
    speaker: str | None = None


class RowOut(BaseModel):
    """One raw row merged into a moment: its window and score."""

    start: float
    end: float
    score: float
    row: int = Field(description="Row offset in the table (-1 when ranked exactly by Lance).")


class HitOut(BaseModel):
    """One result: a moment (``merge=true``, the default: overlapping or adjacent rows of one video
    merged) or a raw row. ``start``/``end`` are seconds in the source video (the moment's span;
    equal for a raw frame); ``score``, ``text`` and the row fields are the best row's; ``thumb`` and
    ``video`` are this server's URLs for the moment's picture and the source file. Moments also
    carry ``best_start``/``best_end`` (the best row's window), ``rows`` and ``utterances`` (the
    video's speech overlapping the span)."""

    level: Level
    video_uid: str
    start: float
    end: float
    score: float
    text: str
    source: str
    row: int = Field(description="Row offset in the table (-1 when ranked exactly by Lance).")
    split: str | None = None
    n_frames: int | None = None
    utterance_id: str | None = None
    frame_index: int | None = None
    speaker: str | None = Field(None, description="Who spoke (the row's utterance; a clip's main speaker).")
    child_id: str | None = None
    age_days: int | None = None
    thumb: str
    video: str
    best_start: float | None = None
    best_end: float | None = None
    n_rows: int | None = Field(None, description="How many raw rows the moment merges.")
    rows: list[RowOut] | None = None
    utterances: list[UtteranceOut] | None = None


class SearchOut(BaseModel):
    query: dict[str, Any] = Field(description="The query and filters as understood.")
    level: Level
    k: int
    merged: bool = Field(description="Whether hits are merged moments (no two of one video overlap) or raw rows.")
    count: int
    elapsed_ms: float
    hits: list[HitOut]


class TranscriptOut(BaseModel):
    """A video's utterances in time order (empty when it has no kept speech)."""

    video_uid: str
    source: str
    duration: float | None = None
    utterances: list[UtteranceOut]


class LabelProb(BaseModel):
    label: str
    prob: float


class ClipLabels(BaseModel):
    start: float
    end: float
    top: list[LabelProb]


class ClassifyOut(BaseModel):
    """``ClassifyResult.as_dict()`` of :mod:`egoindex.classify`: the top labels of the whole video
    and of each clip window (``video`` is the uploaded file's name)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    video: str
    labels: list[str]
    model: str
    mode: str
    top: list[LabelProb]
    clips: list[ClipLabels] = []
