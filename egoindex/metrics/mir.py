"""EPIC-Kitchens-100 multi-instance retrieval (MIR) metrics: soft-relevance mAP and nDCG.

Why a separate, careful implementation: MIR numbers are only comparable with the leaderboard if they
follow the official definitions exactly, and those definitions have two easily-missed quirks:

* mAP's precision at rank k is the running sum of the *soft* relevances r_1 + ... + r_k divided by k
  (not the number of 0/1 hits), and only ranks where r_k == 1 exactly contribute terms;
* nDCG truncates both DCG and the ideal DCG at K = #{j : rel_j > 0}, the number of items with any
  relevance at all.

Conventions (all documented in the functions below):

* Ranking, ties included, is the official code's (JPoSE's ``mAP.py`` / ``nDCG.py``, which EgoVLP
  ships unchanged as ``utils/mAP.py`` / ``utils/nDCG.py``), because the point of MIR is
  comparability: mAP ranks a row with ``np.argsort(-sim)`` and nDCG with
  ``np.argsort(sim)[:, ::-1]``, both numpy's default (unstable) sort on the similarity's own
  dtype. The two rankings agree except inside groups of tied scores: a constant row is ranked in
  column order for mAP and in reverse column order for nDCG. In general the order of tied items
  is whatever numpy's default sort gives (introsort, or the SIMD sort numpy uses on AVX-512 /
  AVX2 CPUs), so with ties even the official numbers can differ between numpy builds; egoindex
  makes the same calls on the same dtype, so on one machine it gives the official code's numbers
  exactly. (R@K in :mod:`egoindex.metrics.retrieval` has its own, order-free tie rule.)
* Arithmetic follows the official code too: mAP's running sums are taken in the relevance's
  dtype (float32 for float32 relevance, as ``np.cumsum`` there does) and nDCG divides by
  ``log2(rank + 1)``, so the results agree to the last bit, not just to rounding.
* Undefined rows: a row with no exactly-relevant item (mAP) or with no item of positive relevance
  (nDCG) is undefined (0/0). The official code averages all rows with ``np.mean``, so one such
  row makes its mean NaN. Per-row functions return NaN for such rows; :func:`mir_metrics`
  reports both means: the headline ``mAP_v2t`` etc. over the defined rows (``np.nanmean``, with
  the number of skipped rows) and ``mAP_v2t_official`` etc. over all rows, as the official code
  computes it (NaN when any row is undefined, else equal to the headline).
* Direction: ``sim`` and ``rel`` are [videos x sentences]; video-to-text is f(sim, rel) and
  text-to-video is f(sim.T, rel.T); "avg" is the arithmetic mean of the two.
* Memory: rows are processed in chunks so that a 10k x 10k matrix needs only a few tens of MB of
  temporary space beyond the inputs (each row is sorted on its own, so chunking changes nothing).

Relevance: :func:`epic_relevance` builds the official soft relevance from verb and noun classes;
:func:`proxy_relevance` builds a documented stand-in from utterance text for stores that have no
class annotations (numbers computed with it are *not* comparable with EPIC's leaderboard).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np

from egoindex.errors import AnnotationError

__all__ = [
    "STOPWORDS",
    "average_precision_rows",
    "content_word_list",
    "content_words",
    "epic_relevance",
    "MEAN_RULE",
    "load_relevance",
    "map_ranking",
    "mean_average_precision",
    "mir_metrics",
    "ndcg",
    "ndcg_ranking",
    "ndcg_rows",
    "proxy_relevance",
]

# Rows per chunk: 512 rows x 10k columns x 8 bytes = 40 MB per temporary array.
_ROW_CHUNK = 512

# A deliberately small list of function words and speech fillers, plus the Ego4D narration markers
# ("#C C ..." = camera wearer, "#O" = other person, "#unsure"). Particles and prepositions that
# change an action's meaning (up, down, on, off, out, in, over) are kept as content words:
# "turn on" and "turn off" must not look identical.
STOPWORDS: frozenset[str] = frozenset(
    """
    a an the this that these those
    i me my mine you your yours he him his she her hers it its we us our they them their
    is am are was were be been being do does did done have has had having
    will would shall should can could may might must
    and or but so if then than because as
    of to at for with from by about into onto
    there here what which who whom whose when where why how
    not no just very really also too
    um uh uhm erm hmm mm ah oh yeah yes okay ok like well
    c o unsure
    """.split()
)

_TOKEN = re.compile(r"[^\W_]+")


def _as_pair(sim: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(sim)
    rel = np.asarray(rel)
    if sim.ndim != 2 or rel.ndim != 2:
        raise ValueError(f"sim and rel must be 2-D, got shapes {sim.shape} and {rel.shape}")
    if sim.shape != rel.shape:
        raise ValueError(f"sim and rel must have the same shape, got {sim.shape} and {rel.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("sim contains NaN or infinite values; rankings would be undefined")
    return sim, rel


def map_ranking(sim: np.ndarray) -> np.ndarray:
    """Column order per row as the official ``mAP.py`` ranks: ``(-sim).argsort()`` (numpy's default
    sort on ``sim``'s own dtype; a constant row comes out in column order)."""
    return np.argsort(-sim, axis=1)


def ndcg_ranking(sim: np.ndarray) -> np.ndarray:
    """Column order per row as the official ``nDCG.py`` ranks: ``np.argsort(sim)[:, ::-1]`` (tied
    items in the reverse of numpy's ascending order; a constant row in reverse column order)."""
    return np.argsort(sim, axis=1)[:, ::-1]


def _rows_metrics(sim: np.ndarray, rel: np.ndarray, want_ap: bool, want_ndcg: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-row AP and nDCG (NaN where undefined), each with the official code's ranking and arithmetic.

    Every step mirrors the official expression (same sort calls on the same dtypes, cumsum in the
    relevance's dtype, integer divisors for mAP, division by ``log2(rank + 1)`` for nDCG) so that
    results agree bit for bit with it; only the chunking over rows is ours, and it does not change
    any row's numbers. Sorting dominates the cost; nDCG needs its own sort because the official
    nDCG orders ties differently from the official mAP.
    """
    sim, rel = _as_pair(sim, rel)
    if not np.issubdtype(rel.dtype, np.floating):
        rel = rel.astype(np.float64)
    n_rows, n_cols = sim.shape
    ap = np.full(n_rows, np.nan)
    nd = np.full(n_rows, np.nan)
    divisor = np.arange(n_cols) + 1  # mAP.py: integer k
    logs = np.log2(np.arange(n_cols) + 2)  # nDCG.py: log2(rank + 1), rank 1-based
    for start in range(0, n_rows, _ROW_CHUNK):
        rows = slice(start, min(start + _ROW_CHUNK, n_rows))
        # C order (not a dtype change) so every row sum runs over contiguous memory, as the
        # official code's gathered arrays do: numpy's pairwise sums then round identically.
        s = np.ascontiguousarray(sim[rows])
        r = np.ascontiguousarray(rel[rows])
        with np.errstate(invalid="ignore", divide="ignore"):
            if want_ap:
                ranked = np.take_along_axis(r, map_ranking(s), axis=1)
                cumulative = np.cumsum(ranked, axis=1)
                cumulative[ranked != 1] = 0
                n_exact = np.sum(ranked == 1, axis=1)
                ap[rows] = np.sum(cumulative / divisor, axis=1) / n_exact  # 0/0 -> NaN
            if want_ndcg:
                ranked = np.take_along_axis(r, ndcg_ranking(s), axis=1)
                ideal = np.sort(r, axis=1)[:, ::-1]
                k_counts = (ideal > 0).astype(int)  # the first K = #{rel > 0} ranks count
                dcg = np.sum(ranked * k_counts / logs, axis=1)
                idcg = np.sum(ideal * k_counts / logs, axis=1)
                nd[rows] = dcg / idcg  # K == 0 -> 0/0 -> NaN
    return ap, nd


def average_precision_rows(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row average precision with EPIC's soft running sum; NaN where a row has no rel == 1 item.

    For a row ranked by :func:`map_ranking` (descending ``sim``, ties as the official code orders
    them) giving relevances r_1..r_n, ``AP = sum_{k : r_k == 1} ((r_1 + ... + r_k) / k) / #{k : r_k == 1}``.
    """
    return _rows_metrics(sim, rel, want_ap=True, want_ndcg=False)[0]


def ndcg_rows(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row nDCG truncated at K = #{j : rel_j > 0}; NaN where K == 0.

    ``DCG = sum_{r=1..K} rel(ranked r) / log2(r + 1)``, ranked by :func:`ndcg_ranking` (descending
    ``sim``, ties as the official nDCG orders them); IDCG is the same sum over the row's
    relevances sorted in descending order.
    """
    return _rows_metrics(sim, rel, want_ap=False, want_ndcg=True)[1]


def _nanmean(values: np.ndarray) -> tuple[float, int]:
    """(mean over non-NaN entries, number of NaN entries skipped); the mean is NaN if all are NaN."""
    nan = np.isnan(values)
    skipped = int(nan.sum())
    if skipped == values.size:
        return float("nan"), skipped
    return float(np.mean(values[~nan])), skipped


def mean_average_precision(sim: np.ndarray, rel: np.ndarray) -> float:
    """Mean over rows of :func:`average_precision_rows`, skipping undefined (NaN) rows; in [0, 1]."""
    return _nanmean(average_precision_rows(sim, rel))[0]


def ndcg(sim: np.ndarray, rel: np.ndarray) -> float:
    """Mean over rows of :func:`ndcg_rows`, skipping rows with no positive relevance; in [0, 1]."""
    return _nanmean(ndcg_rows(sim, rel))[0]


#: What the headline means are, for reports (the ``*_official`` keys are the official code's).
MEAN_RULE = ("headline mAP/nDCG = mean over the defined rows (rows_skipped_* counts the others); "
             "*_official = np.mean over all rows as the official code computes it "
             "(NaN/null when any row is undefined, else equal to the headline)")


def mir_metrics(sim: np.ndarray, rel: np.ndarray) -> dict[str, float | int]:
    """EPIC-style MIR metrics in percent for ``sim``/``rel`` of shape [videos x sentences].

    Keys: ``mAP_v2t, mAP_t2v, mAP_avg, nDCG_v2t, nDCG_t2v, nDCG_avg`` (percent, the headline: means
    over the rows where the metric is defined), the same names with ``_official`` appended (the
    official code's ``np.mean`` over all rows: NaN as soon as one row is undefined, otherwise equal
    to the headline), ``rows_skipped_mAP_v2t, rows_skipped_mAP_t2v, rows_skipped_nDCG_v2t,
    rows_skipped_nDCG_t2v`` (rows left out of the headline means), plus ``n_videos`` and
    ``n_sentences``. v2t = f(sim, rel); t2v = f(sim.T, rel.T); avg = mean of the two (NaN if
    either is NaN). See :data:`MEAN_RULE`.
    """
    sim, rel = _as_pair(sim, rel)
    out: dict[str, float | int] = {}
    per_dir = {"v2t": _rows_metrics(sim, rel, True, True), "t2v": _rows_metrics(sim.T, rel.T, True, True)}
    for i, name in enumerate(("mAP", "nDCG")):
        means = {d: _nanmean(rows[i]) for d, rows in per_dir.items()}
        out[f"{name}_v2t"] = 100.0 * means["v2t"][0]
        out[f"{name}_t2v"] = 100.0 * means["t2v"][0]
        out[f"{name}_avg"] = 100.0 * (means["v2t"][0] + means["t2v"][0]) / 2.0
    for i, name in enumerate(("mAP", "nDCG")):
        official = {d: float(np.mean(rows[i])) for d, rows in per_dir.items()}
        out[f"{name}_v2t_official"] = 100.0 * official["v2t"]
        out[f"{name}_t2v_official"] = 100.0 * official["t2v"]
        out[f"{name}_avg_official"] = 100.0 * (official["v2t"] + official["t2v"]) / 2.0
    for i, name in enumerate(("mAP", "nDCG")):
        for d, rows in per_dir.items():
            out[f"rows_skipped_{name}_{d}"] = int(np.isnan(rows[i]).sum())
    out["n_videos"], out["n_sentences"] = int(sim.shape[0]), int(sim.shape[1])
    return out


def _jaccard_matrix(
    sets_a: Sequence[frozenset[Hashable]], sets_b: Sequence[frozenset[Hashable]], both_empty: float
) -> Iterable[tuple[int, np.ndarray]]:
    """Yield (row index, Jaccard of sets_a[row] with every set in sets_b) using posting lists.

    Each row costs O(len(sets_b) + total postings of its items), so 10k x 10k stays fast without
    ever building a dense item-incidence matrix. Two empty sets get ``both_empty``.
    """
    postings: dict[Hashable, list[int]] = {}
    for j, s in enumerate(sets_b):
        for item in s:
            postings.setdefault(item, []).append(j)
    post = {item: np.asarray(js, dtype=np.intp) for item, js in postings.items()}
    size_b = np.fromiter((len(s) for s in sets_b), dtype=np.int64, count=len(sets_b))
    for i, s in enumerate(sets_a):
        inter = np.zeros(len(sets_b), dtype=np.int64)
        for item in s:
            js = post.get(item)
            if js is not None:
                inter[js] += 1  # each j occurs once per posting list, so no lost updates
        union = len(s) + size_b - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            yield i, np.where(union > 0, inter / np.maximum(union, 1), both_empty)


def epic_relevance(
    verbs_a: Sequence[int] | np.ndarray,
    nouns_a: Sequence[Iterable[int]],
    verbs_b: Sequence[int] | np.ndarray,
    nouns_b: Sequence[Iterable[int]],
) -> np.ndarray:
    """Official EPIC-100 MIR relevance: ``rel = ([verb_a == verb_b] + |N_a ∩ N_b| / |N_a ∪ N_b|) / 2``.

    ``verbs_*`` are verb class ids, ``nouns_*`` iterables of noun class ids (duplicates ignored).
    Returns float32 [len(a) x len(b)]; float32 is exact for the value 1.0 that mAP tests for and
    halves memory at 10k x 10k. Two empty noun sets count as equal (Jaccard 1), so two narrations
    with the same verb and no nouns are exactly relevant.
    """
    va = np.asarray(verbs_a).ravel()
    vb = np.asarray(verbs_b).ravel()
    if len(va) != len(nouns_a) or len(vb) != len(nouns_b):
        raise ValueError(
            f"verbs and nouns must have equal lengths: a {len(va)} vs {len(nouns_a)}, b {len(vb)} vs {len(nouns_b)}"
        )
    sets_a = [frozenset(int(x) for x in n) for n in nouns_a]
    sets_b = [frozenset(int(x) for x in n) for n in nouns_b]
    out = np.empty((len(va), len(vb)), dtype=np.float32)
    for i, jac in _jaccard_matrix(sets_a, sets_b, both_empty=1.0):
        out[i] = ((va[i] == vb).astype(np.float64) + jac) / 2.0
    return out


def content_word_list(text: str) -> list[str]:
    """Lowercased word tokens of ``text`` minus :data:`STOPWORDS`, in text order (repeats kept);
    apostrophes are dropped ("don't" -> "dont") and every other punctuation character separates
    words. No stemming. The one tokenizer of :func:`content_words` and EgoMCQ's text tags."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return [w for w in _TOKEN.findall(text) if w not in STOPWORDS]


def content_words(text: str) -> frozenset[str]:
    """The set of :func:`content_word_list` of ``text``."""
    return frozenset(content_word_list(text))


def proxy_relevance(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """Proxy MIR relevance for stores without verb/noun classes: Jaccard of content-word sets.

    ``rel[i, j] = |W_i ∩ W_j| / |W_i ∪ W_j|`` with W = :func:`content_words`. It has the range and
    the key property of the official relevance: rel == 1 exactly when the two utterances have the
    same content words (so mAP's "exactly relevant" items are paraphrases up to function words),
    and partial overlap gives partial credit. An utterance with no content words (only stopwords
    or fillers) gets relevance 0 with everything, including another such utterance: it carries no
    evidence of what happens, and counting filler pairs as exact matches would inflate mAP.
    Returns float32 [len(a) x len(b)]. Numbers computed with this proxy are not comparable with
    EPIC-Kitchens' leaderboard; only across egoindex checkpoints on the same store.
    """
    sets_a = [content_words(t) for t in texts_a]
    sets_b = [content_words(t) for t in texts_b]
    out = np.empty((len(sets_a), len(sets_b)), dtype=np.float32)
    for i, jac in _jaccard_matrix(sets_a, sets_b, both_empty=0.0):
        out[i] = jac
    return out


def load_relevance(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Load a relevance matrix from ``.npy`` (``allow_pickle=False``) or ``.pkl``/``.pickle``.

    EPIC-Kitchens distributes its MIR relevance as a pickled numpy array, so pickle is accepted
    for that file only: it is trusted input the user downloaded from EPIC-Kitchens, and this is
    the only place egoindex ever unpickles anything. Never point it at a pickle from elsewhere
    (unpickling runs arbitrary code); convert it to ``.npy`` instead.

    Raises :class:`~egoindex.errors.AnnotationError` (a ValueError) for a file that cannot be read
    as an array, another suffix, a non-array payload, a non-2-D or non-numeric array, a
    shape different from ``shape`` (when given), or values outside [0, 1]. Integer and boolean
    arrays are converted to float32; float arrays are returned as they are.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            obj = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as e:  # not an .npy file, or a pickled object array
            raise AnnotationError(f"{path}: cannot read as a numpy array: {e}") from None
    elif suffix in (".pkl", ".pickle"):
        with open(path, "rb") as f:
            try:
                obj = pickle.load(f)  # trusted EPIC-Kitchens relevance file; see docstring
            except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as e:
                raise AnnotationError(f"{path}: cannot read as EPIC's pickled relevance matrix: {e}") from None
    else:
        raise AnnotationError(f"{path}: relevance must be a .npy, .pkl or .pickle file, not {suffix or 'no suffix'!r}")
    if not isinstance(obj, np.ndarray):
        raise AnnotationError(f"{path}: expected a numpy array, got {type(obj).__name__}")
    if obj.ndim != 2:
        raise AnnotationError(f"{path}: relevance must be 2-D [videos x sentences], got shape {obj.shape}")
    if not (np.issubdtype(obj.dtype, np.floating) or np.issubdtype(obj.dtype, np.integer) or obj.dtype == np.bool_):
        raise AnnotationError(f"{path}: relevance must be numeric, got dtype {obj.dtype}")
    if shape is not None and obj.shape != tuple(shape):
        raise AnnotationError(f"{path}: relevance shape {obj.shape} does not match the expected {tuple(shape)}")
    if not np.issubdtype(obj.dtype, np.floating):
        obj = obj.astype(np.float32)
    if obj.size and not (np.isfinite(obj).all() and obj.min() >= 0.0 and obj.max() <= 1.0):
        raise AnnotationError(f"{path}: relevance values must be finite and within [0, 1]")
    return obj
