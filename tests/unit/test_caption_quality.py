"""The per-utterance caption rule (egoindex.media.quality) on hand-made utterances."""

from egoindex.media.quality import Thresholds, compression_ratio, confidence, repeat_run, score, tokens
from egoindex.media.speech import Utterance, cut_long, split_on_pauses


def utt(text: str, p: float = 0.9, no_speech_prob: float = 0.1) -> Utterance:
    words = [{"word": w, "start": i * 0.4, "end": i * 0.4 + 0.3, "p": p} for i, w in enumerate(text.split())]
    conf, comp, rep = score(text, words)
    return Utterance(id="u", start=0.0, end=len(words) * 0.4, text=text, no_speech_prob=no_speech_prob,
                     avg_logprob=-0.3, compression_ratio=3.0, seg_start=0.0, seg_end=30.0, words=words,
                     confidence=conf, text_compression=comp, repeats=rep)


def test_repeat_run_counts_back_to_back_ngrams():
    assert repeat_run(tokens("a b a b a b c")) == 3
    assert repeat_run(tokens("the ball the ball")) == 2
    assert repeat_run(tokens("look at the red ball")) == 1
    assert repeat_run([]) == 0
    # a run counts only when it covers min_words words
    assert repeat_run(tokens("no no no"), min_words=8) == 1
    assert repeat_run(tokens("thank you " * 6), min_words=8) == 6


def test_confidence_is_the_geometric_mean_of_word_probabilities():
    assert confidence([{"p": 0.5}, {"p": 0.5}]) == 0.5
    assert abs(confidence([{"p": 0.9}, {"p": 0.1}]) - 0.3) < 1e-9
    assert confidence([]) is None
    assert confidence([{"p": 0.0}]) > 0  # floored, not zero


def test_short_text_compression_is_not_judged():
    assert compression_ratio("the ball! the ball!") < 2.4  # gzip cannot see repetition this short
    th = Thresholds()
    loop = "Thank you. " * 20
    assert compression_ratio(loop) > th.max_compression_ratio


def test_repetitive_child_directed_speech_is_kept():
    th = Thresholds()
    for text in ["Look, the ball! The ball! Look!", "Ball, ball, ball!", "No, no, that's the duck!",
                 "The cup, the cup. Wow!", "Look, the orange block slides left."]:
        u = utt(text)
        assert th.reject_reason(u) is None, (text, u)


def test_window_scores_alone_do_not_drop_a_confident_utterance():
    th = Thresholds()
    # the window compressed 3.0 (its text repeated a sentence frame) and had no_speech_prob 0.7:
    # the utterance's own words are confident, so it stays
    assert th.reject_reason(utt("Look, the red ball rolls away.", p=0.9, no_speech_prob=0.7)) is None
    # the same window with a hesitant utterance: no speech, as Whisper's own rule would say
    r = th.reject_reason(utt("you", p=0.3, no_speech_prob=0.7))
    assert r is not None and r.startswith("no_speech_prob")


def test_hallucination_shapes_are_dropped_with_their_reason():
    th = Thresholds()
    assert th.reject_reason(utt("Thank you. " * 6)).startswith("repeats")
    assert th.reject_reason(utt("I'm going to go to the store and " * 4)).startswith(("repeats", "text_compression"))
    assert th.reject_reason(utt("mm hmm", p=0.05)).startswith("confidence")
    assert th.reject_reason(utt(" ... ")) == "no words"


def test_scores_differ_between_utterances_of_one_window():
    a, b = utt("Look, the ball!", p=0.95), utt("where is it", p=0.4)
    assert a.confidence != b.confidence and a.text_compression != b.text_compression


def test_file_captions_are_judged_only_for_words():
    u = Utterance(id="f", start=0, end=1, text="the ball the ball the ball the ball the ball", no_speech_prob=0,
                  avg_logprob=0, compression_ratio=0, seg_start=0, seg_end=1, source="srt")
    assert Thresholds().reject_reason(u) is None


def w(word: str, s: float, e: float) -> dict:
    return {"word": word, "start": s, "end": e}


def test_long_pieces_are_cut_at_their_widest_pause_after_punctuation():
    # 8 comma-joined sentences of ~2.6 s with 0.2-0.4 s gaps (Whisper's timing of espeak narration)
    words, t = [], 0.0
    for k in range(8):
        for j, word in enumerate(["look,", "the", "ball", "rolls", "left,"]):
            words.append(w(word, t, t + 0.4))
            t += 0.42
        t += 0.3 if k % 2 else 0.35
    groups = split_on_pauses(words)
    assert all(g[-1]["end"] - g[0]["start"] <= 8.0 for g in groups)
    assert all(g[-1]["word"] == "left," for g in groups)  # cut between sentences, not inside
    assert sum(len(g) for g in groups) == len(words)
    # a piece already short enough is left alone; one word is never cut
    assert cut_long(words[:5], 8.0) == [words[:5]]
    assert cut_long([w("x", 0, 20)], 8.0) == [[w("x", 0, 20)]]
