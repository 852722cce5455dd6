"""Caption quality: which Whisper utterances each rule keeps, on speech whose words are known and
on audio that holds no speech at all (where every kept caption is a hallucination).

Rules, side by side on the same decodes (one Whisper decode per clip and setting):

* **window** (egoindex <= 0.4, the baseline): 0.4's decode (no faster-whisper guard), utterances
  split at pauses only, each judged by its Whisper window's scores: dropped when
  ``no_speech_prob > 0.6``, ``avg_logprob < -1.0`` or ``compression_ratio > 2.4``.
* **utterance, 0.4 decode**: the per-utterance rule (``egoindex.media.quality``; pieces longer
  than 8 s cut at their widest pause, each judged on its own words) on 0.4's decode.
* **utterance**: today's ingest: the per-utterance rule on today's decode, which adds
  faster-whisper's ``hallucination_silence_threshold=2``.
* ``--guards``: also today's decode plus ``no_repeat_ngram_size=3`` (a guard against loops that
  also forbids the repetition child-directed speech is made of), to show what it would change.

Corpora (``egoindex.demo.speech_cases``: espeak-ng speech, the bundled tiny.en model, CPU):
``narrated`` and ``child-directed``, 12 clips x 8 sentences each (``--clips``); non-speech
(silence, tones, music, noise, reversed speech), 6 clips x 20 s of each kind (``--nonspeech``).
* ``--demo DIR``: the demo corpus (``egoindex demo-data``; its ``ground_truth.json`` holds each
  scene's narration and when it is spoken), to say how many of the window rule's drops were
  correct speech.

How a clip is judged: ``egoindex.demo.speech_cases.judge`` (a sentence is *captioned* when the
kept utterances near it hold at least half of its words; an utterance is *correct* when at
least half of its words belong to the sentences it overlaps). Recall = captioned / sentences;
"correct kept" = kept_correct / (kept_correct + dropped_correct).

Usage:
    python -m benchmarks.caption_filter                    # -> benchmarks/results/caption-filter-cpu.json
    python -m benchmarks.caption_filter --demo demo/videos --guards
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.machine import save
from egoindex.demo.speech_cases import child_directed, judge, narrated, nonspeech, speak
from egoindex.media.quality import Thresholds
from egoindex.media.speech import Transcriber, Utterance, load_audio, utterances

@dataclass
class Window:
    """egoindex 0.4's rule (the baseline), on the window's scores."""

    max_no_speech_prob: float = 0.6
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4

    def reject_reason(self, u: Utterance) -> str | None:
        if not any(ch.isalpha() for ch in u.text):
            return "no words"
        if u.no_speech_prob > self.max_no_speech_prob:
            return "no_speech_prob"
        if u.avg_logprob < self.min_avg_logprob:
            return "avg_logprob"
        if u.compression_ratio > self.max_compression_ratio:
            return "compression_ratio"
        return None


def apply(rule: Any, utts: list[Utterance]) -> list[Utterance]:
    for u in utts:
        reason = rule.reject_reason(u)
        u.kept, u.drop_reason = reason is None, reason
    return utts


def settings(guards: bool) -> dict[str, dict[str, Any]]:
    """Decodes: egoindex 0.4's options (no faster-whisper guard), today's, and with --guards one
    more guard on top of today's."""
    out: dict[str, dict[str, Any]] = {"0.4": {"hallucination_silence_threshold": None}, "default": {}}
    if guards:
        out["no_repeat_ngram_size=3"] = {"no_repeat_ngram_size": 3}
    return out


def run_clip(tr: Transcriber, audio: np.ndarray, uid: str, truth: list[dict[str, Any]],
             guards: bool) -> dict[str, Any]:
    """Every rule's judgement of one clip, plus the per-utterance scores (for the table of scores)."""
    out: dict[str, Any] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for name, opts in settings(guards).items():
            segments, _ = tr.decode(audio, **opts)
            if name == "0.4":
                out["window"] = judge(apply(Window(), utterances(segments, uid, max_seconds=math.inf)), truth)
                out["utterance, 0.4 decode"] = judge(utterances(segments, uid, Thresholds()), truth)
            elif name == "default":
                utts = utterances(segments, uid, Thresholds())
                out["utterance"] = judge(utts, truth)
                out["scores"] = [{"text": u.text, "start": u.start, "end": u.end, "confidence": u.confidence,
                                  "text_compression": u.text_compression, "repeats": u.repeats,
                                  "no_speech_prob": u.no_speech_prob, "avg_logprob": u.avg_logprob,
                                  "compression_ratio": u.compression_ratio, "kept": u.kept,
                                  "drop_reason": u.drop_reason} for u in utts]
            else:
                out[f"utterance+{name}"] = judge(utterances(segments, uid, Thresholds()), truth)
    return out


def demo_clips(root: Path) -> list[tuple[str, np.ndarray, list[dict[str, Any]]]]:
    gt = json.loads((root / "ground_truth.json").read_text())
    clips = []
    for v in gt["videos"]:
        truth = [{"text": s["narration"], "start": s["speech_start"], "end": s["speech_end"]}
                 for s in v["scenes"] if s.get("narration")]
        clips.append((v["path"], load_audio(root / v["path"]), truth))
    return clips


def total(results: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    agg: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for r in results:
        for k, v in r[rule].items():
            if k == "drop_reasons":
                reasons.update(v)
            else:
                agg[k] += v
    out: dict[str, Any] = dict(agg)
    out["recall"] = round(agg["captioned"] / agg["sentences"], 4) if agg["sentences"] else None
    out["drop_reasons"] = dict(reasons)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=12, help="clips per speech corpus")
    ap.add_argument("--nonspeech", type=int, default=6, help="clips per non-speech kind")
    ap.add_argument("--demo", type=Path, help="the demo corpus folder (egoindex demo-data) to judge too")
    ap.add_argument("--guards", action="store_true", help="also decode with faster-whisper's own guards")
    ap.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/caption-filter-{cpu|gpu}.json)")
    args = ap.parse_args(argv)

    tr = Transcriber(device="cpu")
    corpora: dict[str, list[dict[str, Any]]] = {}
    for name, make in (("narrated", narrated), ("child-directed", child_directed)):
        rows = []
        for i in range(args.clips):
            lines, secs = make(i)
            audio, truth = speak(lines, secs, i)
            rows.append(run_clip(tr, audio, f"{name}{i}", truth, args.guards))
            print(f"{name} {i + 1}/{args.clips}", file=sys.stderr, flush=True)
        corpora[name] = rows
    for kind in ("silence", "tones", "music", "noise", "reversed"):
        corpora[kind] = [run_clip(tr, nonspeech(kind, s), f"{kind}{s}", [], args.guards)
                         for s in range(args.nonspeech)]
        print(f"{kind} done", file=sys.stderr, flush=True)
    if args.demo:
        corpora["demo"] = [run_clip(tr, audio, uid, truth, args.guards) for uid, audio, truth in demo_clips(args.demo)]

    rules = [k for k in corpora["narrated"][0] if k != "scores"]
    summary = {c: {r: total(rows, r) for r in rules} for c, rows in corpora.items()}
    per_clip_window = {c: sum(1 for r in rows if r["window"]["kept"] == 0) for c, rows in corpora.items()}
    print(f"\n{'corpus':<16}{'rule':<44}{'sentences':>10}{'captioned':>10}{'recall':>8}{'kept':>6}"
          f"{'correct':>8}{'dropped':>8}{'dropped ok':>11}")
    for c, by_rule in summary.items():
        for r, s in by_rule.items():
            rec = "-" if s["recall"] is None else f"{100 * s['recall']:.1f}%"
            print(f"{c:<16}{r:<44}{s['sentences']:>10}{s['captioned']:>10}{rec:>8}{s['kept']:>6}"
                  f"{s['kept_correct']:>8}{s['dropped']:>8}{s['dropped_correct']:>11}")
    print("\nclips with no kept caption under the window rule:", per_clip_window)
    results = {"thresholds": asdict(Thresholds()), "window_rule": asdict(Window()), "summary": summary,
               "clips_without_caption_window_rule": per_clip_window,
               "scores": {c: [u for r in rows for u in r["scores"]] for c, rows in corpora.items()}}
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "caption-filter", **results}, indent=1) + "\n")
        print(f"saved {args.out}")
    else:
        print(f"saved {save('caption-filter', results, ('faster-whisper', 'ctranslate2'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
