"""Speakers: the overlap rule on hand cases, RTTM reading with bad lines, matching RTTM entries and
participant rows to videos, the participants CSV, and the filters' SQL (all pure, no model)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from egoindex.dataset.layout import NO_SPEAKER
from egoindex.errors import FilterError, IngestError, MediaError
from egoindex.ingest.annotations import load_participants, load_rttm
from egoindex.ingest.config import IngestConfig
from egoindex.ingest.participants import read_participants
from egoindex.ingest.run import caption_keys
from egoindex.ingest.video import speech_seconds_by_speaker
from egoindex.media.discover import VideoFile, video_uid
from egoindex.media.speakers import Turn, TurnIndex, attach_speakers, read_rttm, speaker_of
from egoindex.media.speech import Utterance
from egoindex.store.filters import Filters


def utt(start: float, end: float, speaker: str | None = None, kept: bool = True, id_: str = "u") -> Utterance:
    return Utterance(id=id_, start=start, end=end, text="words", no_speech_prob=0.0, avg_logprob=0.0,
                     compression_ratio=0.0, seg_start=start, seg_end=end, kept=kept, speaker=speaker)


def video(source: str) -> VideoFile:
    return VideoFile(Path("/videos") / source, source, video_uid(source))


# ----------------------------------------------------------------------------------------------
# The overlap rule


def test_the_label_covering_most_of_the_utterance_wins():
    # 1.0-3.0 against MOT 0-1.5 (0.5 s of it) and CHI 1.5-3.5 (1.5 s of it)
    turns = [Turn(0.0, 1.5, "MOT"), Turn(1.5, 3.5, "CHI")]
    assert speaker_of(1.0, 3.0, turns) == "CHI"
    assert speaker_of(0.2, 1.4, turns) == "MOT"  # inside one turn
    assert speaker_of(1.0, 2.0, turns) == "MOT"  # 0.5 s each: a tie, the earlier-starting turn's label


def test_ties_go_to_the_earlier_turn_then_alphabetically():
    assert speaker_of(1.0, 3.0, [Turn(2.0, 4.0, "B"), Turn(0.0, 2.0, "A")]) == "A"
    assert speaker_of(1.0, 3.0, [Turn(0.0, 2.0, "Z"), Turn(2.0, 4.0, "A")]) == "Z"  # earlier wins over the alphabet
    assert speaker_of(1.0, 3.0, [Turn(0.0, 4.0, "MAL"), Turn(0.0, 4.0, "FEM")]) == "FEM"  # same onset: alphabetical


def test_a_labels_own_overlapping_turns_count_once():
    # FEM's two turns overlap each other: they cover 1.2 s of 1-3 (a sum would say 2.0 s); MAL covers 1.5 s
    turns = [Turn(1.0, 2.0, "FEM"), Turn(1.2, 2.2, "FEM"), Turn(1.5, 3.0, "MAL")]
    assert speaker_of(1.0, 3.0, turns) == "MAL"


def test_no_overlap_is_none_and_touching_edges_do_not_overlap():
    turns = [Turn(2.0, 3.0, "FEM")]
    assert speaker_of(1.0, 2.0, turns) is None
    assert speaker_of(3.0, 4.0, turns) is None
    assert speaker_of(5.0, 6.0, []) is None


def test_a_zero_length_utterance_takes_the_turn_around_its_instant():
    turns = [Turn(0.0, 1.0, "CHI"), Turn(0.5, 2.0, "FEM")]
    assert speaker_of(1.5, 1.5, turns) == "FEM"
    assert speaker_of(0.7, 0.7, turns) == "CHI"  # inside both: the earlier-starting turn's
    assert speaker_of(2.5, 2.5, turns) is None


def test_the_index_agrees_with_the_rule_over_all_turns():
    rng = random.Random(0)
    turns = [Turn(round(a, 2), round(a + rng.uniform(0.05, 4.0), 2), rng.choice("ABCD"))
             for a in (rng.uniform(0, 60) for _ in range(200))]
    index = TurnIndex(turns)
    for _ in range(500):
        s = round(rng.uniform(-1, 62), 2)
        e = s + round(rng.choice([0.0, rng.uniform(0, 5)]), 2)
        assert index.speaker_of(s, e) == speaker_of(s, e, turns), (s, e)


def test_attach_keeps_a_transcript_speaker_and_changes_nothing_in_place():
    turns = [Turn(0.0, 1.5, "MOT"), Turn(1.5, 3.5, "CHI")]
    utts = [utt(1.0, 3.0), utt(0.0, 1.0, speaker="FAT"), utt(10.0, 11.0), utt(0.1, 0.4, kept=False)]
    got = attach_speakers(utts, turns)
    assert [u.speaker for u in got] == ["CHI", "FAT", None, "MOT"]
    assert utts[0].speaker is None  # the inputs are not changed
    assert got[0].to_json()["speaker"] == "CHI" and "speaker" not in got[2].to_json()


def test_speech_seconds_by_speaker_is_a_union_per_speaker_of_kept_utterances():
    utts = [utt(0.0, 2.0, "FEM"), utt(1.0, 3.0, "FEM"), utt(2.5, 4.0, "CHI"), utt(5.0, 6.0),
            utt(7.0, 9.0, "CHI", kept=False)]
    assert speech_seconds_by_speaker(utts) == {"CHI": 1.5, "FEM": 3.0, NO_SPEAKER: 1.0}
    assert speech_seconds_by_speaker([]) == {}


# ----------------------------------------------------------------------------------------------
# RTTM


GOOD = [
    "SPEAKER kid01_day3 1 0.000 1.500 <NA> <NA> MOT <NA> <NA>",
    "SPEAKER kid01_day3 1 1.500 2.000 <NA> <NA> CHI <NA> <NA>",
    "SPEAKER kid02 1 4.25 0.5 <NA> <NA> FEM <NA> <NA> 0.93",  # a confidence after the usual 10 fields
    "SPEAKER kid02 1 0.5 1 <NA> <NA> spk_00",  # pyannote-like label; fields after the label left out
]
BAD = [
    "SPKR-INFO kid01_day3 1 <NA> <NA> <NA> adult_female MOT <NA>",  # not SPEAKER
    "SPEAKER kid01_day3 1 2.0 1.0 <NA> <NA>",  # no label field
    "SPEAKER kid01_day3 1 soon 1.0 <NA> <NA> MOT <NA> <NA>",
    "SPEAKER kid01_day3 1 nan 1.0 <NA> <NA> MOT <NA> <NA>",
    "SPEAKER kid01_day3 1 -1.0 1.0 <NA> <NA> MOT <NA> <NA>",
    "SPEAKER kid01_day3 1 3.0 0.0 <NA> <NA> MOT <NA> <NA>",
    "SPEAKER kid01_day3 1 3.0 1.0 <NA> <NA> <NA> <NA> <NA>",
]


def test_rttm_rows_become_turns_and_bad_lines_are_counted_by_reason(tmp_path: Path):
    f = tmp_path / "all.rttm"
    f.write_text("\n".join([";; written by a diarizer", "", *GOOD[:2], *BAD, "# a comment", *GOOD[2:]]) + "\n")
    r = read_rttm(f)
    assert r.turns == {"kid01_day3": [Turn(0.0, 1.5, "MOT"), Turn(1.5, 3.5, "CHI")],
                       "kid02": [Turn(0.5, 1.5, "spk_00"), Turn(4.25, 4.75, "FEM")]}  # by onset
    assert r.rows == len(GOOD) + len(BAD)  # comments and blank lines are not rows
    assert r.skipped == {"not a SPEAKER line": 1, "too few fields": 1, "bad number": 2, "negative time": 1,
                         "non-positive duration": 1, "no label": 1}
    assert r.examples[0] == "all.rttm:5: not a SPEAKER line" and len(r.examples) == 5
    assert r.sha256 == hashlib.sha256(f.read_bytes()).hexdigest() and r.stems == {"all": ["kid01_day3", "kid02"]}


def test_a_bad_rttm_input_as_a_whole_is_a_clear_error(tmp_path: Path):
    (tmp_path / "bad.rttm").write_text("\n".join(BAD) + "\n")
    with pytest.raises(MediaError, match=r"no usable speaker turn in 7 RTTM rows .*SPEAKER <file id>"):
        read_rttm(tmp_path / "bad.rttm")
    (tmp_path / "latin1.rttm").write_bytes(b"SPEAKER k 1 0 1 <NA> <NA> M\xe8re <NA> <NA>\n")
    with pytest.raises(MediaError, match=r"latin1.rttm:1: not UTF-8"):
        read_rttm(tmp_path / "latin1.rttm")
    with pytest.raises(MediaError, match="not found"):
        read_rttm(tmp_path / "missing.rttm")
    vtc = tmp_path / "vtc"  # the Voice Type Classifier's output folder: all.rttm repeats the per-class files
    vtc.mkdir()
    (vtc / "all.rttm").write_text(GOOD[0] + "\n" + GOOD[1] + "\n")
    (vtc / "MOT.rttm").write_text(GOOD[0] + "\n")
    with pytest.raises(MediaError, match=r"'kid01_day3' is in two files.*all.rttm"):
        read_rttm(vtc)


def test_rttm_entries_match_videos_by_file_id_then_by_file_stem(tmp_path: Path):
    folder = tmp_path / "rttm"
    folder.mkdir()
    (folder / "all.rttm").write_text(GOOD[0] + "\n" + GOOD[2] + "\n" + "SPEAKER ghost 1 0 1 <NA> <NA> X <NA> <NA>\n")
    # a file per video named after it, whatever file id its writer put inside
    (folder / "kid03.rttm").write_text("SPEAKER waveform 1 0 2 <NA> <NA> KCHI <NA> <NA>\n")
    videos = [video("a/kid01_day3.mp4"), video("kid02.MP4"), video("b/kid03.mp4"), video("kid04.mp4")]
    cfg, turns, report = load_rttm(IngestConfig(), folder, videos, caption_keys)
    uid = {v.source: v.video_uid for v in videos}
    assert turns == {uid["a/kid01_day3.mp4"]: [Turn(0.0, 1.5, "MOT")], uid["kid02.MP4"]: [Turn(4.25, 4.75, "FEM")],
                     uid["b/kid03.mp4"]: [Turn(0.0, 2.0, "KCHI")]}
    assert cfg.rttm_sha256 == read_rttm(folder).sha256 and report is not None
    assert (report.files, report.turns, report.labels) == (2, 4, ["FEM", "KCHI", "MOT", "X"])
    assert (report.unmatched, report.unmatched_examples) == (1, ["ghost"])
    # another file than the config's is refused; a name two videos would take is refused
    with pytest.raises(IngestError, match="not the config's"):
        load_rttm(IngestConfig(rttm_sha256="0" * 64), folder, videos, caption_keys)
    with pytest.raises(IngestError, match="'kid02' matches 2 videos"):
        load_rttm(IngestConfig(), folder, [video("x/kid02.mp4"), video("y/kid02.mp4")], caption_keys)
    with pytest.raises(IngestError, match="pass it as rttm"):
        load_rttm(IngestConfig(rttm_sha256="0" * 64), None, videos, caption_keys)


# ----------------------------------------------------------------------------------------------
# Participants


def test_participants_csv_typed_columns_extra_columns_and_matching(tmp_path: Path):
    f = tmp_path / "participants.csv"
    f.write_text("Video, child_id ,age_days,date,location,sibling,notes\n"
                 "kid01_day3,S,412,2020-03-01,home,yes,\n"
                 "kid02.MP4,A,388.0,,lab,,\"slept, mostly\"\n"
                 "\n"
                 "nobody,Y,10,2020-01-01,home,,\n", encoding="utf-8")
    table = read_participants(f)
    assert table.extra_columns == ["sibling", "notes"]
    p = table.rows["kid01_day3"]
    assert (p.child_id, p.age_days, p.date, p.location, p.extra) == ("S", 412, "2020-03-01", "home", {"sibling": "yes"})
    assert table.rows["kid02.MP4"].to_json() == {"child_id": "A", "age_days": 388, "date": None, "location": "lab",
                                                  "extra": {"notes": "slept, mostly"}}
    videos = [video("a/kid01_day3.mp4"), video("kid02.MP4"), video("kid05.mp4")]
    cfg, people, report = load_participants(IngestConfig(), f, videos, caption_keys)
    assert cfg.participants_sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    assert people is not None and sorted(p.child_id for p in people.values()) == ["A", "S"]
    assert report is not None and (report.rows, report.videos, report.unmatched_examples) == (3, 2, ["nobody"])


@pytest.mark.parametrize("body, message", [
    ("child_id,age_days\nS,4\n", r":1: the participants CSV needs a header with a 'video' column"),
    ("video,age_days\nkid,four hundred\n", r":2: age_days must be a whole number of days"),
    ("video,age_days\nkid,-3\n", r":2: age_days must be a whole number"),
    ("video,age_days\nkid,12.5\n", r":2: age_days must be a whole number"),
    ("video,date\nkid,03/01/2020\n", r":2: date must be YYYY-MM-DD"),
    ("video,child_id\nkid,S\nkid,A\n", r":3: video 'kid' is listed twice"),
    ("video,child_id\n,S\n", r":2: the row names no video"),
    ("video,child_id\nkid,S,extra\n", r":2: more cells than the header"),
    ("video,child_id,child_id\nkid,S,A\n", r":1: every column needs a name, once"),
    ("video,child_id\n", r"no participant rows"),
])
def test_a_bad_participants_file_names_the_line(tmp_path: Path, body: str, message: str):
    f = tmp_path / "p.csv"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(IngestError, match=message):
        read_participants(f)


# ----------------------------------------------------------------------------------------------
# Filters


def test_speaker_child_and_age_filters_render_quoted_sql():
    f = Filters(speakers=("FEM", "O'Brien"), child_ids=("S",), min_age_days=180, max_age_days=365)
    assert f.sql("frames") == ("speaker IN ('FEM', 'O''Brien') AND child_id IN ('S') AND age_days >= 180 "
                               "AND age_days <= 365")
    assert f.columns() == {"speaker", "child_id", "age_days"} and not f.is_empty()
    assert Filters(max_age_days=30).sql("clips") == "age_days <= 30" and Filters(max_age_days=30).columns() == {
        "age_days"}
    assert Filters(speakers=("x' OR '1'='1",)).sql("utterances") == "speaker IN ('x'' OR ''1''=''1')"
    with pytest.raises(FilterError, match="control characters"):
        Filters(speakers=("FEM\n",)).sql("clips")
    with pytest.raises(FilterError, match="the age range is empty"):
        Filters(min_age_days=400, max_age_days=300).sql("clips")
    for bad in (-1, 1.5, True, "30"):
        with pytest.raises(FilterError, match="whole number of days"):
            Filters(min_age_days=bad).sql("clips")  # type: ignore[arg-type]
    assert Filters().is_empty() and Filters().columns() == set()


# ----------------------------------------------------------------------------------------------
# A store built before the speaker and participant columns


def test_an_older_store_still_answers_and_refuses_only_the_new_filters(tmp_path: Path):
    import lance
    import numpy as np
    import pyarrow as pa

    from egoindex.store import Store
    from egoindex.store.layout import StoreLayout, StoreMeta
    from egoindex.store.schema import core_schema, schema_for, vectors_array
    from egoindex.store.writer import outdated_tables, record_tables, write_meta

    dim = 4
    layout = StoreLayout(tmp_path / "store")
    layout.lance.mkdir(parents=True)
    vecs = np.eye(dim, dtype=np.float32)[:2]
    rows = {"utterances": {"utterance_id": ["u0", "u1"], "video_uid": ["v", "v"], "start": [0.0, 2.0],
                           "end": [1.0, 3.0], "split": ["val", "val"], "text": ["one", "two"],
                           "no_speech_prob": [0.1, 0.1], "avg_logprob": [0.0, 0.0], "compression_ratio": [1.0, 1.0],
                           "unit": ["b", "b"]},
            "videos": {"video_uid": ["v"], "source": ["v.mp4"], "split": ["val"], "duration": [4.0], "width": [8],
                       "height": [8], "native_fps": [1.0], "n_frames": [4], "n_utterances": [2], "unit": ["b"]}}
    for name, cols in rows.items():  # as egoindex 0.3 wrote them: without the new columns
        schema = core_schema(schema_for(name, dim))
        data = {**cols, **({"vector": vectors_array(vecs)} if "vector" in schema.names else {})}
        lance.write_dataset(pa.table(data, schema=schema), layout.uri(name))
    assert outdated_tables(layout, dim) == {"utterances": ["speaker", "child_id", "age_days"],
                                            "videos": ["child_id", "age_days", "date", "location", "participant"]}
    got_rows, versions = record_tables(layout)
    write_meta(layout, StoreMeta(model="ViT-B-32", checkpoint="", checkpoint_sha256="0" * 64, embed_dim=dim,
                                 rows=got_rows, table_versions=versions))
    store = Store(layout.root)
    hits = store.search_vector(vecs[0], "utterances", 2, Filters(split="val"))
    assert [h.text for h in hits] == ["one", "two"] and "speaker" not in hits[0].extra
    assert [u.speaker for u in store.transcript("v")] == [None, None] and store.video_speakers == {}
    for f in (Filters(speakers=("FEM",)), Filters(min_age_days=3), Filters(child_ids=("S",))):
        with pytest.raises(FilterError, match="built before the .* column"):
            store.search_vector(vecs[0], "utterances", 2, f)
        with pytest.raises(FilterError, match="build a new STORE"):
            store.count("utterances", f)
