"""What decides an ingest's output (:class:`IngestConfig`) and how to run it (:class:`RunOptions`).

Why two objects: resume is safe only if a rerun produces the same shards, so the settings that
change the bytes are recorded in ``_ingest/config.json`` and checked on every rerun
(:func:`check_config`), while workers, devices, SLURM parts and progress bars may change freely.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

from egoindex.dataset.layout import (SHARD_LAYOUT, SHARD_LAYOUT_KEY, ShardsLayout, has_ingest_config,
                                     read_ingest_config, write_ingest_config)
from egoindex.errors import IngestError
from egoindex.ingest.pairing import DEFAULT_MAX_GAP
from egoindex.media.captions import FORMATS, MIXED, format_names
from egoindex.media.quality import Thresholds
from egoindex.media.seekplan import SAMPLING_MODES
from egoindex.media.speech import BUNDLED

#: The splits, in the order they are packed; a whole video goes to one (``assign_split``).
SPLITS = ("train", "val")


@dataclass
class IngestConfig:
    """Everything that decides the output; stored in ``_ingest/config.json`` and checked on rerun."""

    fps: float = 1.0
    #: ``--sampling``: ``exact`` (the frame on screen at k / fps) or ``fast`` (a frame within 0.5 s
    #: of it, decoding much less: ``egoindex.media.frames``); other frames, so part of the identity
    sampling: str = "exact"
    short_side: int = 256
    jpeg_quality: int = 90
    whisper_model: str = BUNDLED
    language: str | None = None
    max_gap: float = DEFAULT_MAX_GAP
    #: the caption quality rule (``egoindex.media.quality.Thresholds``, whose defaults these are)
    max_no_speech_prob: float = Thresholds.max_no_speech_prob
    speech_confidence: float = Thresholds.speech_confidence
    min_confidence: float = Thresholds.min_confidence
    max_compression_ratio: float = Thresholds.max_compression_ratio
    min_compression_chars: int = Thresholds.min_compression_chars
    max_window_compression: float = Thresholds.max_window_compression
    max_repeats: int = Thresholds.max_repeats
    min_loop_words: int = Thresholds.min_loop_words
    val_fraction: float = 0.1
    split_seed: int = 0
    shard_size: int = 2000
    allow_no_audio: bool = False
    keep_truncated: bool = False
    #: ``--transcripts``: the captions' identity (``captions_sha256``: the file's sha256, or a
    #: folder's, with the ``--transcript-map``'s when given, see ``egoindex.media.captions.read_captions``)
    #: and its format (resolved, never ``auto``; ``mixed`` for a folder of several); both None
    #: without a captions file. Another file changes the output.
    captions_sha256: str | None = None
    captions_format: str | None = None
    #: ``--no-whisper``: videos without file captions get none (Whisper is not even loaded).
    no_whisper: bool = False
    #: ``--rttm`` / ``--participants``: the sha256 of the speaker-turn file (or folder, see
    #: ``egoindex.media.speakers.read_rttm``) and of the participants CSV; None without them.
    #: Another file changes the output (the speakers of the captions, the participants table).
    rttm_sha256: str | None = None
    participants_sha256: str | None = None

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(**{f.name: getattr(self, f.name) for f in fields(Thresholds)})

    def validate(self) -> None:
        if not 0 < self.fps <= 60:
            raise IngestError(f"--fps must be in (0, 60], got {self.fps}")
        if self.sampling not in SAMPLING_MODES:
            raise IngestError(f"--sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")
        if not 0 <= self.val_fraction < 1:
            raise IngestError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.shard_size < 1:
            raise IngestError("--shard-size must be >= 1")
        if not 1 <= self.jpeg_quality <= 100:
            raise IngestError("--jpeg-quality must be in [1, 100]")
        if (self.captions_sha256 is None) != (self.captions_format is None):
            raise IngestError("captions_sha256 and captions_format go together (both from --transcripts)")
        if self.captions_format is not None and self.captions_format not in (*FORMATS, MIXED):
            raise IngestError(f"--transcript-format must be one of {', '.join(format_names())}, "
                              f"got {self.captions_format!r}")


@dataclass
class RunOptions:
    """How to run (does not change the output)."""

    workers: int = 1
    num_parts: int | None = None
    part_index: int | None = None
    device: str = "auto"
    compute_type: str = "auto"
    batch_size: int = 16
    strict: bool = False
    retry_failed: bool = False
    keep_staging: bool = False
    progress: bool = True


def resolve_parts(num_parts: int | None, part_index: int | None) -> tuple[int, int]:
    """Explicit values win; otherwise SLURM array variables; otherwise a single part."""
    env = os.environ
    if num_parts is None:
        num_parts = int(env.get("SLURM_ARRAY_TASK_COUNT", "1"))
    if part_index is None:
        if "SLURM_ARRAY_TASK_ID" in env:
            part_index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        else:
            part_index = 0
    if num_parts < 1 or not 0 <= part_index < num_parts:
        raise IngestError(f"--part-index must be in [0, {num_parts}), got {part_index}")
    return num_parts, part_index


def check_config(layout: ShardsLayout, cfg: IngestConfig) -> None:
    """Refuse to mix outputs of different settings, or of another shard layout, in one folder:
    a SHARDS_DIR of egoindex 0.2 (layout 1) keeps uncaptioned frames in its pair shards, one of
    layout 2 has no ``clips/`` series, so adding videos to it would give clip shards for only
    some of them. The first run writes the config with the shard layout beside it."""
    want = asdict(cfg)
    if has_ingest_config(layout):
        have = read_ingest_config(layout)
        recorded = int(have.get(SHARD_LAYOUT_KEY, 1))
        if recorded == 1:
            raise IngestError(
                f"{layout.root} was written by egoindex 0.2 (shard layout 1: frames "
                "without a caption inside the train/val shards, which open_clip_train would train on). egoindex "
                "build and train still read it as it is; to add videos or to get shards for open_clip_train, "
                "ingest into a new SHARDS_DIR."
            )
        if recorded == 2:
            raise IngestError(
                f"{layout.root} has shard layout 2 (pair and uncaptioned shards, no clips/ series: written "
                f"before clip shards existed; this egoindex writes layout {SHARD_LAYOUT}). Frame training "
                "(egoindex train with a frame model, open_clip_train) and egoindex build still read it as it "
                "is; clip-level video models need clips/ shards, and videos added here would get them alone: "
                "ingest the videos into a new SHARDS_DIR for clip shards (or to add videos)."
            )
        if recorded != SHARD_LAYOUT:
            raise IngestError(
                f"{layout.root} has shard layout {recorded}, which this egoindex (layout {SHARD_LAYOUT}) does "
                "not write: use the egoindex that wrote it, or ingest into a new SHARDS_DIR."
            )
        # a key missing from an older config.json was written before its option existed, when
        # egoindex did what the option's default does (``sampling``: exact)
        defaults = asdict(IngestConfig())
        diff = {k: (have.get(k, defaults[k]), v) for k, v in want.items() if have.get(k, defaults[k]) != v}
        if diff:
            lines = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise IngestError(
                f"{layout.root} was ingested with other settings ({lines}). Rerun with the same "
                "settings to resume, or choose a new SHARDS_DIR."
            )
    else:
        write_ingest_config(layout, {**want, SHARD_LAYOUT_KEY: SHARD_LAYOUT})
