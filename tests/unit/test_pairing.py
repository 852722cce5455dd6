from egoindex.ingest.pairing import pair_frames
from egoindex.media.speech import Utterance, split_on_pauses


def utt(i: int, start: float, end: float, text: str = "x", kept: bool = True, **scores) -> Utterance:
    s = {"no_speech_prob": 0.1, "avg_logprob": -0.3, "compression_ratio": 1.2} | scores
    return Utterance(id=f"u{i}", start=start, end=end, text=text, seg_start=start, seg_end=end, kept=kept, **s)


def ids(pairs):
    return [p.utterance.id if p else None for p in pairs]


def test_inside_nearest_and_beyond_gap():
    us = [utt(0, 2.0, 4.0), utt(1, 8.0, 9.0)]
    times = [0.5, 1.0, 2.0, 3.0, 4.0, 4.9, 5.5, 7.2, 8.5, 10.5]
    pairs = pair_frames(times, us, max_gap=1.0)
    assert ids(pairs) == [None, "u0", "u0", "u0", "u0", "u0", None, "u1", "u1", None]
    assert [p.match for p in pairs if p] == ["nearest", "inside", "inside", "inside", "nearest", "nearest", "inside"]
    assert pairs[5].gap == 0.9


def test_dropped_utterances_never_paired_and_unsorted_input():
    us = [utt(1, 8.0, 9.0), utt(0, 2.0, 4.0, kept=False)]
    assert ids(pair_frames([3.0, 8.5], us, max_gap=1.0)) == [None, "u1"]


def test_equal_gap_prefers_earlier_and_long_utterance_still_contains():
    us = [utt(0, 0.0, 2.0), utt(1, 4.0, 5.0)]
    assert ids(pair_frames([3.0], us, max_gap=1.0)) == ["u0"]
    # A long utterance that started long before several short ones still contains t.
    us = [utt(0, 0.0, 100.0)] + [utt(i, 10.0 + i, 10.5 + i) for i in range(1, 12)]
    assert ids(pair_frames([50.0], us))[0] == "u0"


def test_split_on_pauses():
    w = lambda word, s, e: {"word": word, "start": s, "end": e}  # noqa: E731
    words = [w("The", 0.0, 0.2), w("ball.", 0.25, 0.6), w("Look", 0.95, 1.2), w("a", 1.3, 1.4),
             w("cup,", 1.5, 1.8), w("and", 3.0, 3.2), w("more", 3.3, 3.5)]
    groups = split_on_pauses(words)
    assert [[x["word"] for x in g] for g in groups] == [["The", "ball."], ["Look", "a", "cup,"], ["and", "more"]]
