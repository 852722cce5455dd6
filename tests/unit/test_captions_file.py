"""Captions from files (``egoindex ingest --transcripts``): the EgoClip and CSV readers, format
detection, skipped rows with reasons, and an ingest of two tiny videos that takes its captions
from an EgoClip file (real PyAV videos, real shards, no Whisper)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from egoindex.core.fsutil import sha256_file
from egoindex.dataset.layout import read_manifest, read_transcript
from egoindex.dataset.shards import iter_samples, list_shards
from egoindex.errors import MediaError
from egoindex.ingest.config import IngestConfig, RunOptions
from egoindex.ingest.pairing import pair_frames
from egoindex.ingest.run import run
from egoindex.media.captions import FORMATS, detect_format, parse_tags, read_captions
from egoindex.media.speech import Utterance
from tests.media import make_video

HEADER = "clip_idx\tvideo_uid\tvideo_dur\tnarration_source\tnarration_ind\tnarration_time\tclip_start\tclip_end\t" \
         "clip_text\ttag_verb\ttag_noun"


def egoclip(rows: list[str]) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


GOOD = [
    "0\tvid_a\t4.0\tnarration_pass_1\t0\t0.7\t0.0\t1.5\t#C C picks up the cup\t[93]\t[192, 115, 12]",
    "1\tvid_a\t4.0\tnarration_pass_1\t1\t2.7\t2.0\t3.5\t#C C opens the drawer\t[12]\t[7]",
    # the same index in the second annotation pass is another narration
    "2\tvid_a\t4.0\tnarration_pass_2\t0\t0.9\t0.4\t1.2\t#C C holds a cup\t[93]\t[192]",
    # ragged: no tag columns at all, and more tags than the others
    "3\tvid_b\t4.0\tnarration_pass_1\t0\t1.0\t0.5\t3.0\t#O a man walks in",
    "4\tvid_b\t4.0\tnarration_pass_1\t1\t2.0\t1.5\t2.5\t#C C waves at the man\t[1, 2, 3, 4]\t[]",
    "5\tghost\t9.0\tnarration_pass_1\t0\t1.0\t0.0\t2.0\t#C C is elsewhere\t[1]\t[2]",
]
BAD = [
    "6\tvid_a\t4.0\tnarration_pass_1\t2\t3.0\t3.5\t3.0\t#C C ends before it starts\t[1]\t[2]",
    "7\tvid_a\t4.0\tnarration_pass_1\t3\t3.0\tsoon\t3.0\t#C C has no start\t[1]\t[2]",
    "8\tvid_a\t4.0\tnarration_pass_1\t4\t3.0\t1.0\t2.0\t   \t[1]\t[2]",
    "9\tvid_a\t4.0\tnarration_pass_1\t5\t3.0\t1.0\t2.0\t#C C has\ta tab inside\t[1]\t[2]",
    "10\tvid_a\t4.0\tnarration_pass_1\t6\t3.0\tnan\t2.0\t#C C at NaN\t[1]\t[2]",
]


def test_egoclip_rows_become_utterances_with_tags_and_stable_ids(tmp_path: Path):
    f = tmp_path / "egoclip.csv"  # EgoVLP's name, tab-separated content
    f.write_text(egoclip(GOOD), encoding="utf-8")
    caps = read_captions(f)
    assert caps.format == "egoclip" and caps.rows == len(GOOD) and not caps.skipped
    assert sorted(caps) == ["ghost", "vid_a", "vid_b"]
    a = caps["vid_a"]
    assert [u.id for u in a] == ["vid_a/egoclip/narration_pass_1-0", "vid_a/egoclip/narration_pass_1-1",
                                 "vid_a/egoclip/narration_pass_2-0"]
    u = a[0]
    assert (u.start, u.end, u.text) == (0.0, 1.5, "#C C picks up the cup")  # markers kept as in the file
    assert (u.tag_verb, u.tag_noun, u.source) == ([93], [192, 115, 12], "egoclip")
    assert u.kept and (u.no_speech_prob, u.avg_logprob, u.compression_ratio) == (0.0, 0.0, 0.0)
    assert (u.seg_start, u.seg_end) == (u.start, u.end)
    b = caps["vid_b"]
    assert (b[0].tag_verb, b[0].tag_noun) == (None, None)  # fewer fields: the caption stays, without tags
    assert (b[1].tag_verb, b[1].tag_noun) == ([1, 2, 3, 4], [])
    assert caps.notes == {"tag_verb missing or unreadable": 1, "tag_noun missing or unreadable": 1}
    # the same file read twice gives the same ids
    assert [x.id for x in read_captions(f)["vid_b"]] == [x.id for x in b]
    # only the asked-for videos become utterances; the others are counted
    some = read_captions(f, keep={"vid_a"}.__contains__)
    assert list(some) == ["vid_a"] and some.ignored == {"vid_b": 2, "ghost": 1} and some.rows == len(GOOD)
    assert [x.id for x in some["vid_a"]] == [x.id for x in a]


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path: Path):
    f = tmp_path / "egoclip.tsv"
    f.write_text(egoclip(GOOD[:2] + BAD + [GOOD[0]]), encoding="utf-8")  # the last one repeats an id
    caps = read_captions(f)
    assert len(caps["vid_a"]) == 2
    assert caps.skipped == {"end before start": 1, "bad number": 2, "empty text": 1, "extra fields": 1,
                            "duplicate id": 1}
    assert caps.examples[0] == "egoclip.tsv:4: end before start"  # file:line, the header is line 1
    assert caps.describe_skips().startswith("6 rows skipped (bad number 2, duplicate id 1,")


def test_a_bad_file_as_a_whole_is_a_clear_error_naming_the_line(tmp_path: Path):
    f = tmp_path / "narrations.csv"
    f.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(MediaError, match=r"narrations.csv:1: not a known caption-file header"):
        read_captions(f)
    f.write_text(HEADER.replace("clip_end", "clip_stop") + "\n" + GOOD[0] + "\n")
    with pytest.raises(MediaError, match=r"narrations.csv:1: EgoClip header lacks clip_end"):
        read_captions(f, "egoclip")
    f.write_bytes(egoclip(GOOD[:2]).encode() + b"11\tvid_a\t4\tp\t9\t1\t1\t2\tcaf\xe9\t[1]\t[2]\n")
    with pytest.raises(MediaError, match=r"narrations.csv:4: not UTF-8"):
        read_captions(f)
    f.write_text(egoclip(BAD), encoding="utf-8")
    with pytest.raises(MediaError, match=r"no usable caption in 5 data rows .*end before start"):
        read_captions(f)
    with pytest.raises(MediaError, match="not found"):
        read_captions(tmp_path / "missing.csv")
    with pytest.raises(MediaError, match="unknown caption format 'sbv'"):
        read_captions(f, "sbv")


def test_format_auto_detection_header_first_and_csv_reader(tmp_path: Path):
    assert {"egoclip", "csv"} <= set(FORMATS)
    assert detect_format(Path("x.csv"), HEADER) == "egoclip"  # a .csv name, a tab-separated EgoClip header
    assert detect_format(Path("x.txt"), "video,start,end,text,speaker") == "csv"
    f = tmp_path / "caps.csv"
    f.write_text('video,start,end,text\nkitchen/a,0.5,2,"Hello, there"\nkitchen/a,3,2,backwards\n'
                 "b,1,1.5,\nb,x,2,bad\nb,1,2,fine\n", encoding="utf-8")
    caps = read_captions(f)
    assert caps.format == "csv" and [u.text for u in caps["kitchen/a"]] == ["Hello, there"]
    assert caps["kitchen/a"][0].id == "kitchen/a/csv/line2" and caps["b"][0].source == "csv"
    assert caps.skipped == {"end before start": 1, "empty text": 1, "bad number": 1}
    # a folder of per-video files: read in path order, merged
    d = tmp_path / "folder"
    d.mkdir()
    (d / "one.tsv").write_text(egoclip(GOOD[:3]), encoding="utf-8")
    (d / "two.tsv").write_text(egoclip(GOOD[3:5]), encoding="utf-8")
    (d / "notes.md").write_text("ignored")
    caps = read_captions(d)
    assert sorted(caps) == ["vid_a", "vid_b"] and caps.rows == 5 and len(caps.files) == 2
    (d / "three.tsv").write_text(egoclip(GOOD[4:5]), encoding="utf-8")
    with pytest.raises(MediaError, match="'vid_b' has captions in two files"):
        read_captions(d)


def test_tags_parse_only_integer_lists():
    assert parse_tags("[93]") == [93] and parse_tags(" [192, 115, 12] ") == [192, 115, 12]
    assert parse_tags("[]") == [] and parse_tags("[1,]") == [1]
    for bad in ("", "nan", "[a]", "93", "[1, 2", "__import__('os')"):
        assert parse_tags(bad) is None, bad


def test_utterance_json_round_trip_and_older_transcripts_load():
    u = Utterance("v/egoclip/0", 1.0, 2.0, "#C C x", 0.0, 0.0, 0.0, 1.0, 2.0, source="egoclip", tag_verb=[1],
                  tag_noun=[])
    assert Utterance.from_json(u.to_json()) == u
    w = Utterance("v_u00000", 1.0, 2.0, "hi", 0.1, -0.2, 1.1, 0.9, 2.1)
    assert "tag_verb" not in w.to_json() and w.to_json()["source"] == "whisper"
    old = {k: v for k, v in w.to_json().items() if k != "source"}  # a transcript of an older run
    assert Utterance.from_json(old) == w


def test_overlapping_narrations_pair_with_the_one_that_started_last():
    """The pairing rule documented for EgoClip's overlapping clip windows."""
    caps = [Utterance("a", 0.5, 3.0, "walks in", 0, 0, 0, 0.5, 3.0, source="egoclip"),
            Utterance("b", 1.5, 2.5, "waves", 0, 0, 0, 1.5, 2.5, source="egoclip")]
    got = [p.utterance.id if p else None for p in pair_frames([0.0, 1.0, 2.0, 3.0, 5.0], caps)]
    assert got == ["a", "a", "b", "a", None]


# ----------------------------------------------------------------------------------------------
# Ingest end to end


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "vid_a.mp4", 4, audio=None)
    make_video(d / "sub" / "vid_b.mp4", 4, audio=None)
    return d


def frame_jsons(out: Path) -> dict[tuple[str, float], dict]:
    docs = (json.loads(s["json"]) for s in iter_samples(list_shards(out)))
    return {(d["source"], d["t"]): d for d in docs}


def test_ingest_takes_captions_from_an_egoclip_file_and_refuses_another(two_videos: Path, tmp_path: Path):
    from egoindex.cli.main import app

    caps = tmp_path / "egoclip.csv"
    caps.write_text(egoclip(GOOD + BAD), encoding="utf-8")
    out = tmp_path / "shards"
    # A Whisper model that cannot load: --no-whisper must not even try.
    args = ["ingest", str(two_videos), str(out), "--transcripts", str(caps), "--no-whisper", "--allow-no-audio",
            "--val-fraction", "0", "--whisper-model", str(tmp_path / "no-such-model"), "-q"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "ghost" in r.output  # the file's uid that matches no video is reported

    frames = frame_jsons(out)
    assert len(frames) == 8
    a0 = frames[("vid_a.mp4", 0.0)]["utterance"]
    assert a0["source"] == "egoclip" and a0["tag_verb"] == [93] and a0["tag_noun"] == [192, 115, 12]
    assert a0["id"] == "vid_a/egoclip/narration_pass_1-0" and a0["match"] == "inside"
    a1 = frames[("vid_a.mp4", 1.0)]["utterance"]  # inside both 0-1.5 and 0.4-1.2: the later start wins
    assert a1["id"] == "vid_a/egoclip/narration_pass_2-0" and a1["tag_noun"] == [192]
    b0 = frames[("sub/vid_b.mp4", 0.0)]["utterance"]  # nearest (0.5 s away), from a row without tags
    assert b0["match"] == "nearest" and "tag_verb" not in b0 and b0["source"] == "egoclip"
    assert frames[("sub/vid_b.mp4", 2.0)]["utterance"]["tag_verb"] == [1, 2, 3, 4]
    texts = {s["txt"].decode() for s in iter_samples(list_shards(out)) if "txt" in s}
    assert {"#C C picks up the cup", "#C C holds a cup", "#C C opens the drawer", "#O a man walks in",
            "#C C waves at the man"} <= texts

    rows = {m["source"]: m for m in read_manifest(out)}
    assert {m["status"] for m in rows.values()} == {"ok"}
    assert int(rows["vid_a.mp4"]["utterances"]) == 3 and int(rows["vid_a.mp4"]["captioned_frames"]) == 4
    transcript = read_transcript(out, rows["sub/vid_b.mp4"]["video_uid"])
    assert [u["source"] for u in transcript] == ["egoclip", "egoclip"]
    config = json.loads((out / "_ingest" / "config.json").read_text())
    assert config["captions_format"] == "egoclip" and config["no_whisper"] is True
    assert config["captions_sha256"] == sha256_file(caps)  # the file's own sha256

    # The same file again, through the library with the CLI's settings, resumes (nothing to redo)
    # and reports what the file held.
    cfg = IngestConfig(val_fraction=0.0, allow_no_audio=True, no_whisper=True,
                       whisper_model=str(tmp_path / "no-such-model"))
    s = run(two_videos, out, cfg, RunOptions(progress=False), transcripts=caps)
    assert (s.processed_now, s.reused, s.captions_format, s.captions_rows) == (0, 2, "egoclip", 11)
    assert s.captions_skipped == {"end before start": 1, "bad number": 2, "empty text": 1, "extra fields": 1}
    assert (s.captions_videos, s.captions_unmatched, s.captions_unmatched_examples) == (2, 1, ["ghost"])
    # Another file is refused, naming the difference.
    other = tmp_path / "other.csv"
    other.write_text(egoclip(GOOD[:2]), encoding="utf-8")
    r = CliRunner().invoke(app, [*args[:4], str(other), *args[5:]])
    assert r.exit_code == 2
    flat = " ".join(r.output.split())
    assert "ingested with other settings (captions_sha256: was" in flat and "choose a new SHARDS_DIR" in flat


def test_videos_not_in_the_file_use_whisper_and_file_videos_need_no_audio(tmp_path: Path):
    """Without --no-whisper: the file's video takes its narrations (and, not needing its audio, is
    kept without --allow-no-audio); the other video is transcribed by Whisper as before."""
    videos = tmp_path / "videos"
    make_video(videos / "vid_a.mp4", 4, audio=None)
    make_video(videos / "talk.mp4", 4, lines=[(0.5, "The baby grabs the red ball.")])
    caps = tmp_path / "egoclip.tsv"
    caps.write_text(egoclip(GOOD[:3]), encoding="utf-8")
    out = tmp_path / "shards"
    s = run(videos, out, IngestConfig(val_fraction=0.0), RunOptions(progress=False), transcripts=caps)
    assert s.status_counts == {"ok": 2} and s.captions_videos == 1 and s.captions_unmatched == 0
    sources = {(d["source"], (d["utterance"] or {}).get("source")) for d in frame_jsons(out).values()}
    assert ("vid_a.mp4", "egoclip") in sources and ("talk.mp4", "whisper") in sources
    rows = {m["source"]: m for m in read_manifest(out)}
    whisper = read_transcript(out, rows["talk.mp4"]["video_uid"])
    assert whisper and {u["source"] for u in whisper} == {"whisper"} and "ball" in " ".join(u["text"] for u in whisper)
    assert json.loads((out / "_ingest" / "config.json").read_text())["no_whisper"] is False
