"""The shuffled-pairs control: a seeded permutation of the train utterances' captions, no fixed point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from egoindex.dataset.layout import as_layout, write_manifest, write_transcript
from egoindex.errors import TrainError
from egoindex.train.shuffle import derangement, shuffled_captions


def make_shards(root: Path, videos: dict[str, tuple[str, list[str]]]) -> Path:
    """A SHARDS_DIR with just a manifest and transcripts: uid -> (split, captions)."""
    as_layout(root).make()
    write_manifest(root, [{"video_uid": uid, "source": f"{uid}.mp4", "split": split, "status": "ok"}
                          for uid, (split, _) in videos.items()])
    for uid, (_, texts) in videos.items():
        write_transcript(root, uid, {"video_uid": uid, "utterances": [
            {"id": f"{uid}/{i}", "start": float(i), "end": i + 0.5, "text": t, "kept": True,
             "tag_verb": [i], "tag_noun": [len(t)]} for i, t in enumerate(texts)]})
    return root


@pytest.mark.parametrize("n", [2, 3, 10, 101])
def test_derangement_has_no_fixed_point_and_is_seeded(n: int) -> None:
    for seed in range(20):
        p = derangement(n, seed)
        assert sorted(p.tolist()) == list(range(n)) and not (p == np.arange(n)).any()
        assert np.array_equal(p, derangement(n, seed))
    if n > 3:
        assert not np.array_equal(derangement(n, 0), derangement(n, 1))


def test_train_utterances_get_another_caption_and_val_stays_true(tmp_path: Path) -> None:
    root = make_shards(tmp_path / "shards", {
        "a": ("train", ["look the ball", "the ball", "more milk"]),
        "b": ("train", ["a red cup", "up we go"]),
        "v": ("val", ["the dog barks"]),
    })
    sc = shuffled_captions(root, seed=3)
    assert len(sc) == 5 and "v/0" not in sc.swap
    texts = {"a/0": "look the ball", "a/1": "the ball", "a/2": "more milk", "b/0": "a red cup", "b/1": "up we go"}
    assert sorted(s["text"] for s in sc.swap.values()) == sorted(texts.values())  # a permutation of the captions
    assert all(sc.swap[k]["text"] != texts[k] for k in texts)  # all distinct here, so no one keeps its own
    assert shuffled_captions(root, seed=3) == sc
    # every frame of an utterance carries the same new caption, and that caption's tags
    text, utt = sc.apply("a/0", "look the ball", {"id": "a/0", "start": 0.0, "tag_verb": [0], "tag_noun": [13]})
    assert text == sc.swap["a/0"]["text"] and utt["start"] == 0.0
    src = next(k for k, t in texts.items() if t == text)
    assert utt["tag_verb"] == [int(src.split("/")[1])] and utt["tag_noun"] == [len(text)]
    assert sc.apply("v/0", "the dog barks", {}) == ("the dog barks", {})  # not a train utterance: unchanged


def test_prepare_uses_the_shuffled_caption_and_its_text_key(tmp_path: Path) -> None:
    from PIL import Image

    from egoindex.train.data import key64, normalize_text, prepare

    root = make_shards(tmp_path / "shards", {"a": ("train", ["look the ball", "more milk"])})
    sc = shuffled_captions(root, seed=0)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    sample = {"jpg": buf.getvalue(), "txt": b"look the ball",
              "json": json.dumps({"video_uid": "a", "utterance": {"id": "a/0"}}).encode()}
    _, text, tkey, ukey, _, _ = prepare(sample, lambda im: im, captions=sc)
    assert text == "more milk" and tkey == key64(normalize_text("more milk")) and ukey == key64("a/0")


def test_too_few_utterances_is_a_clear_error(tmp_path: Path) -> None:
    root = make_shards(tmp_path / "shards", {"a": ("train", ["only one"])})
    with pytest.raises(TrainError, match="at least 2 train utterances"):
        shuffled_captions(root, seed=0)
