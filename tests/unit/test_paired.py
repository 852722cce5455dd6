"""Paired comparison of two runs on the same items (``metrics.paired``) and ``bench compare``'s
lining up of reports: same item sets side by side with a paired section, different ones refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from egoindex.bench.compare import compare, evaluation_set
from egoindex.core.report import write_report
from egoindex.errors import BenchError
from egoindex.metrics.paired import mcnemar_exact_p, paired_difference


def test_mcnemar_exact_matches_the_binomial_sign_test() -> None:
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 5) == 1.0
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact_p(6, 0) == mcnemar_exact_p(0, 6)  # symmetric
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)
    stats = pytest.importorskip("scipy.stats")
    for a, b in ((3, 12), (20, 31), (7, 7), (0, 1)):
        assert mcnemar_exact_p(a, b) == pytest.approx(stats.binomtest(min(a, b), a + b, 0.5).pvalue)
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 2)


def test_paired_difference_on_right_wrong_outcomes() -> None:
    a = [1, 1, 0, 0, 1, 0, 1, 1]
    b = [1, 0, 0, 1, 1, 1, 1, 1]
    r = paired_difference(a, b, n_resamples=500)
    assert r["n"] == 8 and r["mean_a"] == 5 / 8 and r["mean_b"] == 6 / 8
    assert r["diff"] == pytest.approx(1 / 8)
    assert (r["only_a"], r["only_b"]) == (1, 2) and r["p_mcnemar"] == pytest.approx(mcnemar_exact_p(1, 2))
    assert r["ci95_low"] <= r["diff"] <= r["ci95_high"]


def test_fractional_credit_has_no_exact_test_and_nan_items_are_dropped_from_both() -> None:
    r = paired_difference([1.0, 0.5, 0.0, math.nan], [1.0, 1.0, 0.0, 1.0])
    assert r["n"] == 3 and r["p_mcnemar"] is None and r["diff"] == pytest.approx(0.5 / 3)
    with pytest.raises(ValueError, match="equal"):
        paired_difference([1, 0], [1])


def test_paired_interval_covers_the_true_difference_on_a_simulated_case() -> None:
    # Two models answer 200 shared items; B is right with probability 0.1 more than A on each,
    # and the items' difficulty is shared (paired). The 95 % interval should cover 0.1 in most runs.
    rng = np.random.default_rng(0)
    covered = 0
    reps = 120
    for _ in range(reps):
        p = rng.uniform(0.2, 0.7, size=200)
        a = (rng.random(200) < p).astype(float)
        b = (rng.random(200) < p + 0.1).astype(float)
        r = paired_difference(a, b, n_resamples=400, seed=int(rng.integers(1 << 30)))
        covered += r["ci95_low"] <= 0.1 <= r["ci95_high"]
    assert covered / reps >= 0.88


def _fc_report(folder: Path, name: str, sha: str, credits: list[float], trials_sha: str = "t" * 64,
               ckpt: str = "/runs/trained/latest.pt") -> Path:
    trials = [{"id": i, "category": "ball", "target": f"ball/{i}.jpg", "credit": c} for i, c in enumerate(credits)]
    acc = 100.0 * sum(credits) / len(credits)
    write_report(folder, name, metrics={"acc": acc, "n": len(credits)},
                 meta={"model": "m", "checkpoint_sha256": sha, "checkpoint": ckpt, "bench": "forced_choice",
                       "ways": 4, "trials_sha256": trials_sha},
                 tables={"trials": trials})
    return folder / f"{name}.json"


def test_compare_lines_up_runs_on_the_same_trials(tmp_path: Path) -> None:
    a = _fc_report(tmp_path, "a", "a" * 64, [1, 1, 1, 0, 1, 1, 0, 1, 1, 1])
    b = _fc_report(tmp_path, "b", "b" * 64, [0, 1, 0, 0, 0, 1, 0, 0, 1, 0], ckpt="/runs/shuffled/latest.pt")
    text = compare([a, b], tmp_path / "cmp.md")
    assert (tmp_path / "cmp.md").read_text(encoding="utf-8") == text
    assert "| run | trained/latest.pt | shuffled/latest.pt |" in text
    assert evaluation_set_of(a) == evaluation_set_of(b) and "10 trials" in evaluation_set_of(a)
    assert "paired on the same trials" in text
    row = next(line for line in text.splitlines() if line.startswith("| shuffled/latest.pt |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # 8 of 10 right for the first, 3 of 10 for the second; 5 only-first, 0 only-second
    assert cells[1:5] == ["10", "80.00", "30.00", "-50.00"]
    assert cells[6] == "5 / 0" and float(cells[7]) == pytest.approx(mcnemar_exact_p(5, 0), rel=1e-3)


def test_compare_refuses_runs_on_different_trials_unless_asked(tmp_path: Path) -> None:
    a = _fc_report(tmp_path, "a", "a" * 64, [1, 0, 1, 1])
    other_file = _fc_report(tmp_path, "b", "b" * 64, [1, 0, 0, 1], trials_sha="u" * 64)
    other_items = _fc_report(tmp_path, "c", "c" * 64, [1, 0, 0, 1, 1])  # same file hash claimed, other items
    for other in (other_file, other_items):
        with pytest.raises(BenchError, match="not scored on the same items"):
            compare([a, other])
        text = compare([a, other], allow_mixed=True)
        assert "paired" not in text and "| acc |" in text
    # different benchmarks may share a table, with no check between them
    write_report(tmp_path, "egomcq", metrics={"inter_acc": 50.0}, meta={"model": "m", "bench": "egomcq",
                                                                       "egomcq_sha256": "q" * 64})
    assert "inter_acc" in compare([a, tmp_path / "egomcq.json"])


def evaluation_set_of(path: Path) -> str:
    from egoindex.core.fsutil import read_json

    s = evaluation_set(read_json(path))
    assert s is not None
    return s
