"""The clip-model training data rules: same crop for all frames of a clip, scene-aware negatives,
EgoNCE tags from the caption file or the tagger, and the one frame-sampling rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from egoindex.errors import ConfigError
from egoindex.metrics.egomcq import EGOCLIP_NOUN_DIM, EGOCLIP_VERB_DIM, tag_index
from egoindex.model.pooling import clip_frame_indices, segment_indices
from egoindex.train.data import ClipSample, SceneNegatives, collate_clips, multi_hot, same_crop, tag_ids


def test_segment_indices_middles_and_random_offsets():
    assert segment_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert segment_indices(2, 4).tolist() == [0, 0, 1, 1]  # fewer frames than asked: repeat, in order
    assert segment_indices(1, 4).tolist() == [0, 0, 0, 0]
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = segment_indices(9, 4, rng)
        # one frame from each of the four segments [0, 2.25), [2.25, 4.5), [4.5, 6.75), [6.75, 9) of positions
        assert all(int(k * 9 / 4) <= i <= int((k + 1) * 9 / 4 - 1e-9) for k, i in enumerate(idx.tolist()))
    seen = {tuple(segment_indices(12, 3, rng)) for _ in range(100)}
    assert len(seen) > 10  # training really varies the offset
    with pytest.raises(ConfigError):
        segment_indices(0, 4)


def test_clip_frame_indices_window_and_nearest():
    t = np.arange(0, 10, 0.5)
    assert clip_frame_indices(t, 2.0, 4.0, 4).tolist() == [4, 5, 7, 8]  # 5 frames 2.0..4.0, middles of 4 segments
    assert clip_frame_indices(t, 2.1, 2.2, 4).tolist() == [4, 4, 4, 4]  # no frame inside: the nearest to 2.15


def test_same_crop_gives_every_frame_of_a_clip_the_same_box():
    from egoindex.model.openclip import create

    pp = create("ego-tiny-rn", aug_cfg={"scale": (0.2, 0.5)}).preprocess_train
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8))
    clip = same_crop(pp, [im, im, im], seed=7)
    assert torch.equal(clip[0], clip[1]) and torch.equal(clip[1], clip[2])
    torch.manual_seed(0)
    independent = torch.stack([pp(im) for _ in range(3)])
    assert not torch.equal(independent[0], independent[1])  # what per-frame transforms would do
    assert not torch.equal(same_crop(pp, [im], seed=8)[0], clip[0])  # another clip, another box


def _clip(uid: str, start: float, text: str) -> ClipSample:
    return ClipSample(torch.zeros(2, 3, 4, 4), text, hash(text), hash((uid, start)), None, None, uid, start, start + 1.0)


def test_scene_negatives_pair_clips_of_the_same_video_at_other_times():
    stream = []
    for uid in ("a", "b", "c"):  # runs of same-video clips, as the clip shards store them
        stream += [_clip(uid, 2.0 * k, f"{uid} says {k}") for k in range(5)]
    stream.append(_clip("lonely", 0.0, "only one moment"))
    stream += [_clip("d", 2.0 * k, f"d says {k}") for k in range(3)]
    stage = SceneNegatives(rank=0, world_size=1, seed=0, start_pass=0.0, max_waiting=2)
    out = list(stage.run(iter(stream)))
    anchors = [a for a, _, _ in out]
    assert sorted(map(id, anchors)) == sorted(map(id, stream))  # every clip is an anchor exactly once
    for a, n, same in out:
        if same:
            assert n.video_uid == a.video_uid and n is not a
            assert a.end <= n.start or n.end <= a.start  # another time
            assert n.text_key != a.text_key
        else:
            assert n.video_uid != a.video_uid
    by_uid = {a.video_uid: same for a, _, same in out}
    assert by_uid["lonely"] is False  # no other moment in its video: a clip of another video instead
    assert sum(same for _, _, same in out) >= 14


def test_collate_puts_anchors_then_negatives():
    a1, a2, n1, n2 = _clip("a", 0, "x"), _clip("b", 0, "y"), _clip("a", 5, "z"), _clip("c", 0, "w")
    batch = collate_clips([(a1, n1, True), (a2, n2, False)], tokenizer=lambda texts: torch.zeros(len(texts), 3))
    assert batch.images.shape == (4, 2, 3, 4, 4)
    assert batch.text_keys.tolist() == [a1.text_key, a2.text_key, n1.text_key, n2.text_key]
    assert batch.negatives == 1


def test_tags_from_the_caption_file_else_the_tagger():
    assert tag_ids({"tag_verb": [93], "tag_noun": [192, 115]}, "#C C picks up the cup") == ([93], [192, 115])
    verbs, nouns = tag_ids({"id": "x"}, "#C C picks up the cup")
    assert verbs == [tag_index("pick", EGOCLIP_VERB_DIM)] and nouns == [tag_index("cup", EGOCLIP_NOUN_DIM)]
    hot = multi_hot([[1, 3], []], 5)
    assert hot.tolist() == [[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]]
