"""The shuffled-pairs control (``egoindex train --shuffle-pairs``): the same frames, the same
captions, the pairing between them broken.

CVCL (Vong et al., Science 2024) reports every learning figure next to a model trained on shuffled
frame-utterance pairs: what a model learns from the caption distribution and the frames alone,
with no correspondence between them. A learning claim holds when the trained model beats that
control on held-out videos.

Decision: the permutation is over the train split's *utterances* (from SHARDS_DIR's transcripts),
not over frames. Every frame of an utterance gets the same other utterance's caption (and its
verb/noun tags, for EgoNCE), so what stays is exactly what a caption file holds: how many frames a
caption covers, which captions repeat, duplicates masked by the same rule (the text key is the new
caption's). A permutation of frames would give every frame of an utterance a different caption,
a harder and different control. The permutation is seeded (``--seed``) and has no fixed point, so
no utterance keeps its own caption; val stays true (the control is scored on real pairs).
Reading the transcripts costs one JSON per train video, not a pass over the shards. With
``--speakers`` the permutation is over those speakers' utterances only (the others are not
trained on at all), so the control holds the same captions as the run it controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.dataset.layout import NO_SPEAKER, read_manifest, read_transcript
from egoindex.errors import TrainError

__all__ = ["ShuffledCaptions", "shuffled_captions"]


@dataclass(frozen=True)
class ShuffledCaptions:
    """utterance id -> the utterance whose caption (``text``, ``tag_verb``, ``tag_noun``) it carries now."""

    swap: dict[str, dict[str, Any]]
    seed: int

    def __len__(self) -> int:
        return len(self.swap)

    def apply(self, utt_id: str, text: str, utt: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The caption and utterance record a training sample uses (unchanged for an id not in the map)."""
        other = self.swap.get(utt_id)
        if other is None:
            return text, utt
        return other["text"], {**utt, "tag_verb": other.get("tag_verb"), "tag_noun": other.get("tag_noun")}


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` without fixed points (n >= 2): a random permutation, then
    each fixed point swapped with its neighbour's target (which removes it without making another)."""
    perm = np.random.default_rng([seed, 5151]).permutation(n)
    for i in range(n):
        if perm[i] == i:
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    return perm


def shuffled_captions(shards_dir: Path, seed: int, speakers: list[str] | None = None) -> ShuffledCaptions:
    """The shuffled pairing of SHARDS_DIR's train utterances (of ``speakers`` only, when given;
    module docstring)."""
    rows = [r for r in read_manifest(shards_dir) if r.get("split") == "train" and r.get("status") == "ok"]
    wanted = set(speakers) if speakers else None
    utts = sorted(((str(u["id"]), u) for r in rows for u in read_transcript(shards_dir, r["video_uid"])
                   if u.get("id") and (wanted is None or (u.get("speaker") or NO_SPEAKER) in wanted)),
                  key=lambda kv: kv[0])
    if len(utts) < 2:
        raise TrainError(f"--shuffle-pairs needs at least 2 train utterances in {shards_dir}/transcripts; "
                         f"found {len(utts)}")
    perm = derangement(len(utts), seed)
    swap = {utts[i][0]: {"text": str(utts[int(p)][1]["text"]).strip(), "tag_verb": utts[int(p)][1].get("tag_verb"),
                         "tag_noun": utts[int(p)][1].get("tag_noun")}
            for i, p in enumerate(perm)}
    return ShuffledCaptions(swap, seed)
