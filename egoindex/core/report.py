"""Benchmark reports: one JSON (machine-readable), one Markdown (human-readable) and PNG plots.

Why: a benchmark number is only useful next to what produced it. Every report therefore carries
``meta`` with at least the model name and the checkpoint's sha256 (the caller passes them), and
:func:`compare_reports` lines several reports up side by side, identified by model and short
checkpoint hash, so "did fine-tuning help?" is one table.

Conventions: metrics are flat scalars (per-item data such as EgoMCQ predictions goes into
``tables``); NaN and infinities become ``null`` in JSON (strict JSON has no NaN) and "n/a" in
Markdown. Files are written atomically. Plots use matplotlib's Agg canvas directly, without
pyplot, so they work headless and touch no global state.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.fsutil import atomic_open, read_json, write_json

__all__ = ["PlotSpec", "compare_reports", "plot_bars", "plot_rank_histogram", "write_report"]

# A plot given as data: {"kind": "bars", "labels": [...], "values": [...], "title": str} or
# {"kind": "rank_histogram", "ranks": [...], "title": str}. A plot may also be a callable that
# writes a PNG to the path it is given.
PlotSpec = Mapping[str, Any]
Plot = PlotSpec | Callable[[Path], object]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCALARS = (str, int, float, bool, type(None), np.generic)


def jsonable(obj: Any) -> Any:
    """numpy types to Python, NaN/inf to None, tuples/arrays to lists, Paths to str (recursively)."""
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fmt_value(value: Any) -> str:
    """One Markdown table cell: floats with 2 decimals, missing or NaN as 'n/a', '|' escaped."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (bool, int)):
        return str(value)
    if not isinstance(value, str):
        value = json.dumps(jsonable(value), ensure_ascii=False)
    return value.replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def new_figure(figsize: tuple[float, float] = (6.0, 4.0)) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")


def plot_bars(path: str | Path, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str = "") -> None:
    """Bar chart with each value printed on its bar (e.g. EgoMCQ accuracy per type); NaN -> 'n/a'."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    vals = [float(v) if v is not None else float("nan") for v in values]
    fig = new_figure()
    ax = fig.subplots()
    heights = [v if math.isfinite(v) else 0.0 for v in vals]
    bars = ax.bar(range(len(vals)), heights, color="tab:blue")
    ax.set_xticks(range(len(vals)), [str(x) for x in labels])
    for bar, v in zip(bars, vals):
        ax.annotate(
            f"{v:.1f}" if math.isfinite(v) else "n/a",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
        )
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    save_figure(fig, Path(path))


def plot_rank_histogram(path: str | Path, ranks: Sequence[float] | np.ndarray, title: str) -> None:
    """Histogram of 1-based ranks (NaN ignored) on logarithmic bins, with median and mean marked;
    ranks span 1..N so linear bins would hide everything but rank 1."""
    r = np.asarray(ranks, dtype=np.float64)
    r = r[np.isfinite(r)]
    fig = new_figure()
    ax = fig.subplots()
    if r.size:
        top = max(float(r.max()), 1.0)
        edges = np.unique(np.floor(np.geomspace(1.0, top + 1.0, num=30)))
        if edges[-1] <= top:
            edges = np.append(edges, top + 1.0)
        ax.hist(r, bins=edges, color="tab:blue")
        if top > 10:
            ax.set_xscale("log")
        ax.axvline(float(np.median(r)), color="tab:orange", label=f"median {np.median(r):.1f}")
        ax.axvline(float(np.mean(r)), color="tab:green", linestyle="--", label=f"mean {np.mean(r):.1f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no ranks", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel("rank of best positive (1 = top)")
    ax.set_ylabel("queries")
    ax.yaxis.get_major_locator().set_params(integer=True)
    save_figure(fig, Path(path))


def _draw(spec: Plot, path: Path) -> None:
    if callable(spec):
        spec(path)
        return
    kind = spec.get("kind")
    if kind == "bars":
        plot_bars(path, spec["labels"], spec["values"], spec.get("title", ""), spec.get("ylabel", ""))
    elif kind == "rank_histogram":
        plot_rank_histogram(path, spec["ranks"], spec.get("title", ""))
    else:
        raise ValueError(f"unknown plot kind {kind!r}; expected 'bars' or 'rank_histogram' or a callable")


def write_report(
    out_dir: str | Path,
    name: str,
    metrics: Mapping[str, Any],
    meta: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    plots: Mapping[str, Plot] | None = None,
    max_md_rows: int = 200,
) -> dict[str, Path]:
    """Write ``{name}.json``, ``{name}.md`` and one ``{name}_{plot}.png`` per entry of ``plots``.

    ``metrics``: flat scalars (ValueError otherwise; put per-item data in ``tables``). ``meta``:
    what produced the numbers; include ``model`` and ``checkpoint_sha256`` for
    :func:`compare_reports`. ``tables``: name -> rows (dicts; columns in first-seen order); the
    Markdown shows the first ``max_md_rows`` rows of each, the JSON all of them. ``plots``:
    plot name -> :data:`PlotSpec` or callable(path). Returns the written paths by kind
    ("json", "md", "plot:<name>").
    """
    if not _SAFE_NAME.match(name):
        raise ValueError(f"report name {name!r} must be a plain file name (letters, digits, '.', '_', '-')")
    nested = [k for k, v in metrics.items() if not isinstance(v, _SCALARS)]
    if nested:
        raise ValueError(f"metrics must be scalars; move {nested} into tables")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    plot_files: dict[str, str] = {}
    for plot_name, spec in (plots or {}).items():
        if not _SAFE_NAME.match(plot_name):
            raise ValueError(f"plot name {plot_name!r} must be a plain file name")
        p = out / f"{name}_{plot_name}.png"
        _draw(spec, p)
        plot_files[plot_name] = p.name
        written[f"plot:{plot_name}"] = p

    doc = {
        "name": name,
        "metrics": jsonable(dict(metrics)),
        "meta": jsonable(dict(meta)),
        "tables": jsonable({k: [dict(r) for r in rows] for k, rows in (tables or {}).items()}),
        "plots": plot_files,
    }
    written["json"] = out / f"{name}.json"
    write_json(written["json"], doc)

    lines = [f"# {name}", ""]
    for key in ("model", "checkpoint_sha256"):
        lines.append(f"- {key}: {fmt_value(meta.get(key))}")
    lines += [f"- {k}: {fmt_value(v)}" for k, v in meta.items() if k not in ("model", "checkpoint_sha256")]
    lines += ["", "## Metrics", ""]
    lines += md_table(["metric", "value"], [[fmt_value(k), fmt_value(v)] for k, v in metrics.items()])
    for table_name, rows in (tables or {}).items():
        columns: list[str] = []
        for r in rows:
            columns += [str(c) for c in r if str(c) not in columns]
        lines += ["", f"## {fmt_value(table_name)}", ""]
        if not rows:
            lines.append("(no rows)")
            continue
        shown = rows[:max_md_rows]
        lines += md_table([fmt_value(c) for c in columns], [[fmt_value(r.get(c)) for c in columns] for r in shown])
        if len(rows) > len(shown):
            lines += ["", f"(first {len(shown)} of {len(rows)} rows; all rows are in {name}.json)"]
    if plot_files:
        lines += ["", "## Plots", ""]
        lines += [f"![{pn}]({fn})" for pn, fn in plot_files.items()]
    written["md"] = out / f"{name}.md"
    with atomic_open(written["md"], "w") as f:
        f.write("\n".join(lines) + "\n")
    return written


def compare_reports(paths: Sequence[str | Path], leading: Sequence[tuple[str, Sequence[Any]]] = ()) -> str:
    """Markdown table of several reports' metrics side by side: one column per report, headed
    ``model @ sha256[:8]`` (plus the report name when two headers would be equal), first the
    ``leading`` rows (a name and one value per report, e.g. which run and which item set), then
    one row per metric name in first-seen order; "-" where a report lacks a metric. Writes nothing."""
    reports = [read_json(Path(p)) for p in paths]
    headers: list[str] = []
    for rep in reports:
        meta = rep.get("meta") or {}
        model = meta.get("model") or rep.get("name", "?")
        sha = str(meta.get("checkpoint_sha256") or "no-checkpoint")[:8]
        headers.append(f"{model} @ {sha}")
    for i, h in enumerate(headers):
        if headers.count(h) > 1:
            headers[i] = f"{h} ({reports[i].get('name', i)})"
    names: list[str] = []
    for rep in reports:
        names += [k for k in rep.get("metrics", {}) if k not in names]
    rows = [[fmt_value(name)] + [fmt_value(v) for v in values] for name, values in leading]
    for metric in names:
        rows.append([fmt_value(metric)] + [fmt_value(r["metrics"][metric]) if metric in r.get("metrics", {}) else "-" for r in reports])
    return "\n".join(md_table(["metric"] + [fmt_value(h) for h in headers], rows)) + "\n"
