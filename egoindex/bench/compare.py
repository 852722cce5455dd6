"""``egoindex bench compare``: several reports (checkpoints) side by side, one column each, and,
for runs scored on the same items, their item-by-item differences.

Why it checks what it lines up: a column of numbers is only a comparison when every run answered
the same trials. Each benchmark that has a fixed item set names it in its report's ``meta``
(forced choice: the trial file's sha256; EgoMCQ: the question file's sha256; alignment: the split,
seed and baseline count) and lists its per-item outcomes in a table. Reports of one benchmark
whose item sets differ are refused (a BenchError that names the difference) unless the caller
asks for ``allow_mixed``; those that agree get a paired section (:mod:`egoindex.metrics.paired`):
each run minus the first, over the same items, with a bootstrap interval and, for right/wrong
outcomes, the exact McNemar p. Reports of different benchmarks may share one table, as before.

The table itself is :func:`egoindex.core.report.compare_reports` (the report format's owner).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import atomic_open, read_json
from egoindex.core.report import compare_reports, fmt_value, md_table
from egoindex.errors import BenchError
from egoindex.metrics.paired import paired_difference

__all__ = ["LINEUPS", "Lineup", "compare", "evaluation_set"]


@dataclass(frozen=True)
class Lineup:
    """How one benchmark's reports line up: the ``meta`` keys that name its item set, the
    ``tables`` entry with one row per item, the row's item id and outcome fields, and the factor
    that puts the mean outcome in the report's units (100 for accuracies in percent)."""

    identity: tuple[str, ...]
    table: str | None = None
    key: str = ""
    value: str = ""
    scale: float = 1.0
    items: str = "items"


LINEUPS: dict[str, Lineup] = {
    "forced_choice": Lineup(("trials_sha256", "ways"), "trials", "id", "credit", 100.0, "trials"),
    "egomcq": Lineup(("egomcq_sha256",), "predictions", "key", "correct", 100.0, "questions"),
    "alignment": Lineup(("split", "seed", "baselines"), "utterances", "utterance_id", "gap_max_across", 1.0,
                        "utterances"),
    "retrieval": Lineup(("split",)),
    # egoindex probe and egoindex finetune reports (egoindex.media.labelled.BENCH): the same test videos
    "video_classification": Lineup(("test_set_sha256",), "test_predictions", "video", "correct", 100.0, "test videos"),
}


def _bench(rep: dict[str, Any]) -> str:
    return str((rep.get("meta") or {}).get("bench") or rep.get("name") or "?")


def _outcomes(rep: dict[str, Any], lineup: Lineup) -> dict[str, float] | None:
    """item id -> outcome (NaN when the item was not scored), or None when the report has no such table."""
    if lineup.table is None:
        return None
    rows = (rep.get("tables") or {}).get(lineup.table)
    if not isinstance(rows, list):
        return None
    out: dict[str, float] = {}
    for row in rows:
        v = row.get(lineup.value)
        out[str(row.get(lineup.key))] = float(v) if isinstance(v, (int, float)) else math.nan
    return out


def evaluation_set(rep: dict[str, Any]) -> str | None:
    """A short name of the item set a report was scored on (its identity keys, plus a hash of its
    item ids when it lists them), or None for a benchmark without a fixed item set."""
    lineup = LINEUPS.get(_bench(rep))
    if lineup is None:
        return None
    meta = rep.get("meta") or {}
    parts = []
    for k in lineup.identity:
        v = meta.get(k)
        parts.append(f"{k}={str(v)[:12] if k.endswith('sha256') else v}")
    items = _outcomes(rep, lineup)
    if items is not None:
        digest = hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()[:8]
        parts.append(f"{len(items)} {lineup.items} #{digest}")
    return ", ".join(parts)


def _run_label(rep: dict[str, Any]) -> str:
    ckpt = (rep.get("meta") or {}).get("checkpoint")
    if not ckpt:
        return "-"
    p = Path(str(ckpt))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _paired_section(bench: str, reps: list[tuple[str, dict[str, Any]]], lineup: Lineup) -> list[str]:
    """Markdown lines: every run after the first against the first, over their common items."""
    base_label, base = reps[0]
    base_items = _outcomes(base, lineup)
    if base_items is None:
        return []
    rows = []
    for label, rep in reps[1:]:
        items = _outcomes(rep, lineup)
        if items is None:
            continue
        keys = [k for k in base_items if k in items]
        res = paired_difference([base_items[k] for k in keys], [items[k] for k in keys])
        s = lineup.scale
        rows.append([fmt_value(label), str(res["n"]), fmt_value(s * res["mean_a"]), fmt_value(s * res["mean_b"]),
                     fmt_value(s * res["diff"]),
                     f"{fmt_value(s * res['ci95_low'])} to {fmt_value(s * res['ci95_high'])}",
                     "-" if res["only_a"] is None else f"{res['only_a']} / {res['only_b']}",
                     "-" if res["p_mcnemar"] is None else f"{res['p_mcnemar']:.3g}"])
    if not rows:
        return []
    head = [f"run (vs {base_label})", lineup.items, "first", "this", "this - first", "paired 95 % CI",
            "only first / only this right", "McNemar p"]
    what = "accuracy in points" if lineup.scale == 100.0 else lineup.value
    return ["", f"**{bench}, paired on the same {lineup.items}** ({what}; bootstrap over {lineup.items}, "
            "seed 0, 1000 resamples):", "", *md_table(head, rows)]


def compare(reports: Sequence[str | Path], out: str | Path | None = None, *, allow_mixed: bool = False) -> str:
    """Markdown of several reports side by side (see the module doc), optionally written to
    ``out`` (atomically). A missing or unreadable report, or reports of one benchmark scored on
    different item sets (unless ``allow_mixed``), is a BenchError that names them."""
    missing = [str(p) for p in reports if not Path(p).is_file()]
    if missing:
        raise BenchError(f"no such report: {', '.join(missing)}")
    paths = [Path(p) for p in reports]
    try:
        reps = [read_json(p) for p in paths]
        sets = [evaluation_set(r) for r in reps]
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(reps):
            groups.setdefault(_bench(r), []).append(i)
    except (KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read the reports: {e}") from e
    for bench, idx in groups.items():
        if len({sets[i] for i in idx}) > 1 and not allow_mixed:
            listing = "; ".join(f"{paths[i]}: {sets[i]}" for i in idx)
            raise BenchError(f"these {bench} reports were not scored on the same items ({listing}); rescore "
                             "them on one item set (e.g. forced choice's --trials-file), or pass --allow-mixed "
                             "to put them side by side anyway")
    try:
        labels = [_run_label(r) for r in reps]
        text = compare_reports(paths, leading=[("run", labels), ("evaluated on", [s or "-" for s in sets])])
        extra: list[str] = []
        for bench, idx in groups.items():
            lineup = LINEUPS.get(bench)
            if lineup is not None and len(idx) > 1 and len({sets[i] for i in idx}) == 1:
                extra += _paired_section(bench, [(labels[i] if labels[i] != "-" else str(paths[i]), reps[i])
                                                 for i in idx], lineup)
    except (KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read the reports: {e}") from e
    if extra:
        text += "\n".join(extra) + "\n"
    if out is not None:
        with atomic_open(Path(out), "w") as f:
            f.write(text)
    return text
