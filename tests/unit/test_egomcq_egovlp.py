"""EgoVLP reads egoindex's generated EgoMCQ file unchanged, and scores it as egoindex does.

EgoVLP's code is not copied here. ``egovlp_val_items`` re-writes, from
``data_loader/EgoClip_EgoMCQ_dataset.py`` (showlab/EgoVLP), every access its validation path
makes: ``len(metadata)`` and ``metadata[str(i)]``; per item ``answer``, ``query``, ``choices``
(iterated in key order, ``len`` = number of options), ``types``; ``_get_caption`` on the query
and on every choice (``sample['clip_text']``, ``eval(sample['tag_noun'])`` and
``eval(sample['tag_verb'])`` into multi-hot vectors of 582 nouns / 118 verbs, so each tag must be a
string holding a list of in-range ints); ``_get_video_path`` on every choice
(``sample['video_uid']``, ``float(sample['clip_start'])``, ``float(sample['clip_end'])``, 600 s
chunks). ``egovlp_accuracy`` re-writes ``model/metric.py``'s ``egomcq_accuracy_metrics``: argmax
per item (first maximum), groups by the sorted unique types, zipped with the labels
["Intra-video", "Inter-video"] (so EgoVLP prints type 1 as "Intra-video").
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from egoindex.metrics.egomcq import (
    EGOCLIP_FIELDS,
    EGOCLIP_NOUN_DIM,
    EGOCLIP_VERB_DIM,
    N_CHOICES,
    NARRATION_SOURCE,
    generate_egomcq,
    load_egomcq,
    score_egomcq,
    tag_index,
    tag_string,
    text_tags,
    write_egomcq,
)

CHUNK_SEC = 600  # EgoVLP: each video chunk is up to 600 s


def _eval_tags(cell: Any) -> list[int]:
    # EgoVLP calls eval() on the cell: it must be a string (eval of a list raises TypeError).
    assert isinstance(cell, str), cell
    idx = ast.literal_eval(cell)  # what eval gives for a list literal, without running code
    assert isinstance(idx, list) and all(isinstance(i, int) for i in idx), cell
    return idx


def egovlp_caption(sample: dict[str, Any]) -> tuple[str, np.ndarray, np.ndarray]:
    noun_vec = np.zeros(EGOCLIP_NOUN_DIM)
    verb_vec = np.zeros(EGOCLIP_VERB_DIM)
    for i in _eval_tags(sample["tag_noun"]):
        noun_vec[i] = 1  # IndexError for an index >= 582, as torch.zeros(582)[i] = 1 would raise
    for i in _eval_tags(sample["tag_verb"]):
        verb_vec[i] = 1
    return sample["clip_text"], noun_vec, verb_vec


def egovlp_video_path(sample: dict[str, Any]) -> tuple[list[str], list[float], int]:
    uid = sample["video_uid"]
    start, end = max(float(sample["clip_start"]), 0), max(float(sample["clip_end"]), 0)
    c0, c1 = int(start // CHUNK_SEC), int(end // CHUNK_SEC)
    return [f"{uid}/{c0}.mp4", f"{uid}/{c1}.mp4"], [start, end], (c0 + 1) * CHUNK_SEC


def egovlp_val_items(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        metadata = json.load(f)
    out = []
    for item in range(len(metadata)):
        mcq = metadata[str(item % len(metadata))]
        answer = mcq["answer"]
        text_query, _, _ = egovlp_caption(mcq["query"])
        options = mcq["choices"]
        text_ops, videos = [], []
        for option in options:
            sample = options[option]
            videos.append(egovlp_video_path(sample))
            text_ops.append(egovlp_caption(sample)[0])
        out.append({"video": videos, "text": text_query, "text_ops": text_ops, "correct": answer,
                    "type": mcq["types"], "n_options": len(options)})
    return out


def egovlp_accuracy(preds: np.ndarray, labels: np.ndarray, types: np.ndarray) -> dict[str, float]:
    metrics = {}
    for type_i, group_i in zip(np.unique(types), ["Intra-video", "Inter-video"]):
        correct = total = 0
        for pred, label, t in zip(preds, labels, types):
            if t == type_i:
                correct += int(np.argmax(pred)) == int(label)
                total += 1
        metrics[group_i] = correct / total * 100
    return metrics


def corpus() -> tuple[list[dict[str, Any]], dict[str, list[tuple[float, float]]]]:
    """Seven val videos of 90 s (one train video), an utterance every 6 s, 4 s windows every 2 s."""
    words = ["grabs red ball", "rolls blue car", "shakes green cup", "spins yellow star", "#C C picks a bag of clothes"]
    utts, clips = [], {}
    for v in range(8):
        vid = f"vid{v}"
        split = "train" if v == 7 else "val"
        for k in range(15):
            utts.append({"video_uid": vid, "start": 6.0 * k + 1, "end": 6.0 * k + 3.5,
                         "text": f"the baby {words[(v + k) % len(words)]}", "split": split})
        clips[vid] = [(2.0 * i, 2.0 * i + 4.0) for i in range(44)]
    return utts, clips


def test_generated_file_has_every_egoclip_field(tmp_path: Path) -> None:
    utts, clips = corpus()
    items = generate_egomcq(utts, clips, 30, seed=1, durations={f"vid{v}": 90.5 for v in range(8)})
    assert len(items) == 30
    path = tmp_path / "egomcq.json"
    write_egomcq(items, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    seen_idx = []
    for key, item in raw.items():
        rows = [item["query"]] + [item["choices"][str(i)] for i in range(N_CHOICES)]
        for pos, row in enumerate(rows):
            assert set(EGOCLIP_FIELDS) <= set(row), sorted(set(EGOCLIP_FIELDS) - set(row))
            assert row["narration_source"] == NARRATION_SOURCE and row["video_dur"] == 90.5
            assert row["narration_time"] == pytest.approx((row["clip_start"] + row["clip_end"]) / 2)
            assert isinstance(row["narration_ind"], int) and isinstance(row["clip_idx"], int)
            seen_idx.append(row["clip_idx"])
        q = item["query"]
        # The query's narration_ind points at its utterance among the video's val utterances.
        own = sorted((u for u in utts if u["video_uid"] == q["video_uid"]), key=lambda u: u["start"])
        assert own[q["narration_ind"]]["start"] == q["clip_start"]
        verbs, nouns = text_tags(q["clip_text"])
        assert q["tag_verb"] == tag_string(verbs, EGOCLIP_VERB_DIM) and q["tag_noun"] == tag_string(nouns, EGOCLIP_NOUN_DIM)
    assert seen_idx == list(range(len(raw) * (N_CHOICES + 1)))  # clip_idx = the row's position in the file
    assert load_egomcq(path) == raw  # egoindex reads it back unchanged (extra keys preserved)


def test_egovlp_loader_reads_it_and_its_metric_gives_egoindex_accuracy(tmp_path: Path) -> None:
    utts, clips = corpus()
    gt = {"grabs": "ball", "rolls": "car"}

    def tagger(vid: str, start: float, end: float, text: str) -> tuple[list[str], list[str]]:
        hits = [(a, o) for a, o in gt.items() if a in text]  # a stand-in "ground truth"
        return ([a for a, _ in hits], [o for _, o in hits]) if hits else text_tags(text)

    items = generate_egomcq(utts, clips, 40, seed=3, tagger=tagger)
    path = tmp_path / "egomcq.json"
    write_egomcq(items, path)
    loaded = egovlp_val_items(path)  # raises on any field EgoVLP needs and the file lacks
    assert len(loaded) == len(items) == 40
    for got, item in zip(loaded, items.values()):
        assert got["n_options"] == N_CHOICES and got["text"] == item["query"]["clip_text"]
        assert got["text_ops"] == [item["choices"][str(i)]["clip_text"] for i in range(N_CHOICES)]
    grabs = [it["query"] for it in items.values() if "grabs" in it["query"]["clip_text"]]
    assert grabs and all(q["tag_verb"] == f"[{tag_index('grabs', EGOCLIP_VERB_DIM)}]" for q in grabs)

    rng = np.random.default_rng(0)
    dim = 16
    query_vecs, choice_vecs, preds = {}, {}, []
    for key, item in items.items():
        q = rng.normal(size=dim)
        c = rng.normal(size=(N_CHOICES, dim))
        c[item["answer"]] += q * rng.uniform(0, 1.5)  # sometimes right, sometimes not
        q, c = q / np.linalg.norm(q), c / np.linalg.norm(c, axis=1, keepdims=True)
        query_vecs[key], choice_vecs[key] = q, c
        preds.append(c @ q)  # EgoVLP: sim_matrix(text_embed, vid_embed)
    ours = score_egomcq(load_egomcq(path), query_vecs, choice_vecs)
    labels = np.array([x["correct"] for x in loaded])
    types = np.array([x["type"] for x in loaded])
    theirs = egovlp_accuracy(np.array(preds), labels, types)
    # EgoVLP's labels are swapped: its "Intra-video" is type 1 = inter-video.
    assert theirs["Intra-video"] == pytest.approx(ours["inter_acc"], abs=1e-12)
    assert theirs["Inter-video"] == pytest.approx(ours["intra_acc"], abs=1e-12)
    assert 0 < ours["correct_inter"] < ours["n_inter"]  # the comparison is not trivially 0 or 100


def test_tags_in_range_and_in_egoclip_form() -> None:
    assert tag_string(["picks"], EGOCLIP_VERB_DIM) == f"[{tag_index('picks', EGOCLIP_VERB_DIM)}]"
    s = tag_string(["bag", "clothes", "floor", "bag"], EGOCLIP_NOUN_DIM)
    idx = ast.literal_eval(s)
    assert s == json.dumps(idx) and s.startswith("[") and ", " in s  # "[192, 115, 12]"-style
    assert len(idx) == 3 and all(0 <= i < EGOCLIP_NOUN_DIM for i in idx)  # duplicates dropped
    assert tag_string([], EGOCLIP_VERB_DIM) == "[]"
    assert tag_index("Picks", 118) == tag_index("picks", 118)  # case-insensitive, stable
    # Ego4D narration form: the verb follows the "#C C" marker.
    assert text_tags("#C C picks a bag of clothes from the floor") == (["pick"], ["bag", "clothes", "floor"])
