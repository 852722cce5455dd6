"""The blackout rule (what a redacted range hides), its files, and the atomic shard rewrite.

Pure rule tests over plain dicts, the blackout list reader on real CSV/JSON files, and
``rewrite_shard`` on a real tar written by the dataset's ShardWriter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egoindex.dataset.blackouts import (Blackout, Blackouts, add_blackouts, append_log, read_blackout_list,
                                        read_blackouts, read_log, redacted_shard_sizes, refuse_if_pending,
                                        write_journal)
from egoindex.dataset.layout import covered_seconds, speech_seconds_by_speaker
from egoindex.errors import RedactionError

BL = Blackouts([Blackout("a", 10.0, 20.0), Blackout("b")])


def frame(uid: str, t: float, utt: tuple[float, float] | None = None) -> dict:
    return {"video_uid": uid, "t": t, "utterance": None if utt is None else {"start": utt[0], "end": utt[1]}}


def test_a_frame_is_hidden_in_the_range_or_when_its_caption_meets_it() -> None:
    assert BL.hides_sample(frame("a", 10.0)) and BL.hides_sample(frame("a", 20.0))  # closed range
    assert not BL.hides_sample(frame("a", 9.99)) and not BL.hides_sample(frame("a", 20.01))
    assert BL.hides_sample(frame("a", 9.5, (8.0, 10.5)))  # outside, but captioned by an utterance that meets it
    assert BL.hides_sample(frame("a", 21.0, (20.0, 20.5)))  # touching counts
    assert not BL.hides_sample(frame("a", 9.5, (8.0, 9.9)))
    assert not BL.hides_sample(frame("c", 15.0, (14.0, 16.0)))  # another video
    assert BL.hides_sample(frame("b", 0.0)) and BL.hides_sample(frame("b", 1e6)) and BL.whole("b")
    assert not BL.whole("a") and not Blackouts()


def test_clip_samples_utterances_and_windows() -> None:
    clip = {"video_uid": "a", "utterance": {"start": 5.0, "end": 9.0}, "times": [5.0, 7.0, 9.0],
            "frame_keys": ["a_000010", "a_000014", "a_000018"]}
    assert not BL.hides_sample(clip)
    assert BL.hides_sample(clip, frozenset({"a_000018"}))  # one of its frames was hidden by its own caption
    assert BL.hides_sample({**clip, "times": [5.0, 10.0]})
    assert BL.hides_sample({**clip, "utterance": {"start": 9.0, "end": 10.0}})
    assert BL.hides_utterance("a", {"start": 19.0, "end": 25.0}) and not BL.hides_utterance("a", {"start": 0, "end": 9})
    # a store clip window: meets the range, or overlaps a hidden utterance (the build's text-join rule)
    assert BL.hides_window("a", 18.0, 22.0) and not BL.hides_window("a", 4.0, 8.0)
    assert BL.hides_window("a", 4.0, 8.0, [(7.5, 10.5)]) and not BL.hides_window("a", 4.0, 8.0, [(8.0, 10.5)])
    assert not BL.hides_window("c", 0.0, 100.0, [(0.0, 100.0)])


def test_bad_blackouts_are_refused_with_what_to_do() -> None:
    for args, said in ((("a", 5.0, 2.0), "end 2.0 is before start 5.0"), (("a", -1.0), "start must be"),
                       (("a", 0.0, float("nan")), "end must be"), (("",), "video uid"), (("a\nb",), "control")):
        with pytest.raises(RedactionError, match=said):
            Blackout(*args)


def test_blackout_lists_csv_and_json(tmp_path: Path) -> None:
    f = tmp_path / "list.csv"
    f.write_text("\ufeffvideo, start ,end\nkid_a.mp4,12,30\nkid_b.mp4,,\nkid_c.mp4,5,\n", encoding="utf-8")
    assert read_blackout_list(f) == [Blackout("kid_a.mp4", 12.0, 30.0), Blackout("kid_b.mp4"),
                                     Blackout("kid_c.mp4", 5.0, None)]
    add_blackouts(tmp_path / "shards", read_blackout_list(f))
    add_blackouts(tmp_path / "shards", [Blackout("kid_b.mp4")])  # union: recorded once
    saved = tmp_path / "shards" / "_redactions" / "blackouts.json"
    assert len(json.loads(saved.read_text())["blackouts"]) == 3
    assert read_blackout_list(saved) == list(read_blackouts(tmp_path / "shards"))
    for text, said in (("uid,from,to\nx,1,2\n", "header video,start,end"), ("video,start,end\nx,soon,3\n", ":2: start"),
                       ("video,start,end\n", "no rows")):
        f.write_text(text, encoding="utf-8")
        with pytest.raises(RedactionError, match=said):
            read_blackout_list(f)
    saved.write_text("{not json", encoding="utf-8")
    with pytest.raises(RedactionError, match="cannot be read"):  # never read as "no blackouts"
        read_blackouts(tmp_path / "shards")


def test_the_log_the_journal_and_refusals(tmp_path: Path) -> None:
    append_log(tmp_path, {"event": "finished", "id": "r1", "shards": {"train-0000-00000.tar": 100}})
    with open(tmp_path / "_redactions" / "log.jsonl", "a") as f:
        f.write('{"event": "fini')  # a line cut short by a kill
    append_log(tmp_path, {"event": "finished", "id": "r2", "shards": {"train-0000-00000.tar": 90}})
    assert [e["id"] for e in read_log(tmp_path)] == ["r1", "r2"]
    assert redacted_shard_sizes(tmp_path) == {"train-0000-00000.tar": 90}
    refuse_if_pending(tmp_path, "ingest")  # nothing pending
    write_journal(tmp_path, {"id": "r3", "started_at": "now", "store": "/s"})
    with pytest.raises(RedactionError, match=r"unfinished redaction \(r3.*egoindex redact .* /s"):
        refuse_if_pending(tmp_path, "ingest into it")


def test_speech_seconds_rule_is_shared() -> None:
    assert covered_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == 4.0
    assert speech_seconds_by_speaker([("MOT", 0.0, 2.0), (None, 1.0, 3.0), ("MOT", 1.0, 2.5)]) == {
        "MOT": 2.5, "unknown": 2.0}


def test_rewrite_shard_drops_samples_atomically_and_is_idempotent(tmp_path: Path) -> None:
    from egoindex.dataset.shards import ShardWriter, read_shard, rewrite_shard

    path = tmp_path / "train-0000-00000.tar"
    w = ShardWriter(path)
    for i in range(6):
        w.write(f"v_{i:06d}", {"jpg": bytes([i]) * 50, "json": json.dumps({"t": i}).encode(), "txt": b"hi"})
    w.close()
    keep = path.read_bytes()
    r = rewrite_shard(path, lambda key, s: json.loads(s["json"])["t"] % 2 == 0)
    assert (r.kept, r.dropped, r.changed) == (3, 3, True) and r.size == path.stat().st_size
    got = [(k, s) for k, s in read_shard(path)]
    assert [k for k, _ in got] == ["v_000000", "v_000002", "v_000004"]
    assert all(s["jpg"] == bytes([int(k[-1])]) * 50 for k, s in got)
    for k, s in got:  # the kept samples' bytes are those of the original shard
        assert s["jpg"] in keep and s["json"] in keep
    mtime = path.stat().st_mtime_ns
    again = rewrite_shard(path, lambda key, s: json.loads(s["json"])["t"] % 2 == 0)
    assert not again.changed and path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".*tmp*"))
    gone = rewrite_shard(path, lambda key, s: False)
    assert gone.changed and gone.size == 0 and not path.exists()
