"""Per-video human transcripts as captions (``egoindex ingest --transcripts FOLDER``): SRT, WebVTT,
CHAT, ELAN and TextGrid each round-trip (the test writes the file as the tool would, with two
speakers at known times, and reads back times, text, speaker and source), a folder may mix them,
a broken file is recorded with its reason while the others are read, and ``--transcript-map``
names the video of files not named after it. The ingest end to end is in tests/e2e/test_ingest.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pympi
import pytest
from praatio import textgrid

from egoindex.core.fsutil import sha256_file
from egoindex.errors import MediaError
from egoindex.media.captions import FORMATS, MIXED, chat_text, detect_format, read_captions, read_video_map

#: (start s, end s, speaker, text): two speakers, several utterances, times exact in ms
UTTS = [
    (0.5, 1.5, "MOT", "look at the ball."),
    (1.75, 2.5, "CHI", "ball!"),
    (3.0, 3.8, "MOT", "where is it?"),
    (4.25, 5.0, "CHI", "there."),
    (61.25, 3723.5, "MOT", "a long one."),  # minutes and hours in the timestamps
]
DURATION = 3725.0


def clock(t: float, sep: str) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def write_srt(path: Path) -> Path:
    path.write_text("".join(f"{i}\n{clock(s, ',')} --> {clock(e, ',')}\n{t}\n\n"
                            for i, (s, e, _, t) in enumerate(UTTS, 1)), encoding="utf-8")
    return path


def write_vtt(path: Path) -> Path:
    cues = "".join(f"{clock(s, '.')} --> {clock(e, '.')} align:start\n<v {who}>{t}</v>\n\n" for s, e, who, t in UTTS)
    path.write_text(f"WEBVTT\n\nNOTE written by the test\n\n{cues}", encoding="utf-8")
    return path


CHAT_HEADER = ("@UTF8\n@Begin\n@Languages:\teng\n@Participants:\tCHI Target_Child, MOT Mother\n"
               "@ID:\teng|test|CHI|2;06.||||Target_Child|||\n@ID:\teng|test|MOT|||||Mother|||\n")


def write_chat(path: Path) -> Path:
    # CHAT writes the terminator as its own token, and the bullet in ms at the end of the line
    lines = "".join(f"*{who}:\t{t[:-1]} {t[-1]} \x15{round(s * 1000)}_{round(e * 1000)}\x15\n" for s, e, who, t in UTTS)
    path.write_text(CHAT_HEADER + lines + "@End\n", encoding="utf-8")
    return path


def write_elan(path: Path) -> Path:
    eaf = pympi.Elan.Eaf()
    eaf.add_linguistic_type("utterance")
    eaf.add_tier("Mother", ling="utterance", part="MOT")  # speaker: the tier's participant
    eaf.add_tier("CHI", ling="utterance", part="")  # no participant: the tier id
    for s, e, who, t in UTTS:
        eaf.add_annotation("Mother" if who == "MOT" else "CHI", round(s * 1000), round(e * 1000), t)
    eaf.remove_tier("default")
    eaf.to_file(str(path))
    return path


def textgrid_long(tiers: dict[str, list[tuple[float, float, str]]], xmax: float) -> str:
    """A long-format TextGrid as Praat saves it, empty intervals filling the gaps (pauses)."""
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
           "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for n, (name, spans) in enumerate(tiers.items(), 1):
        filled: list[tuple[float, float, str]] = []
        t = 0.0
        for s, e, text in spans:
            if s > t:
                filled.append((t, s, ""))
            filled.append((s, e, text))
            t = e
        if t < xmax:
            filled.append((t, xmax, ""))
        out += [f"    item [{n}]:", '        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
                f"        xmax = {xmax}", f"        intervals: size = {len(filled)}"]
        for k, (s, e, text) in enumerate(filled, 1):
            out += [f"        intervals [{k}]:", f"            xmin = {s}", f"            xmax = {e}",
                    f'            text = "{text}"']
    return "\n".join(out) + "\n"


def tiers_of(utts: list[tuple[float, float, str, str]]) -> dict[str, list[tuple[float, float, str]]]:
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    for s, e, who, t in utts:
        tiers.setdefault(who, []).append((s, e, t))
    return tiers


def write_textgrid(path: Path) -> Path:
    path.write_text(textgrid_long(tiers_of(UTTS), DURATION), encoding="utf-8")
    return path


def write_textgrid_short(path: Path) -> Path:
    """The short text format, written by praatio (what praatio-based tools save)."""
    tg = textgrid.Textgrid()
    for name, spans in tiers_of(UTTS).items():
        tg.addTier(textgrid.IntervalTier(name, spans, 0, DURATION))
    tg.save(str(path), format="short_textgrid", includeBlankSpaces=True)
    return path


#: format name -> (file name, writer, whether the format names the speaker)
WRITERS: dict[str, tuple[str, Callable[[Path], Path], bool]] = {
    "srt": ("kid01_day3.srt", write_srt, False),
    "webvtt": ("kid01_day3.vtt", write_vtt, True),
    "chat": ("kid01_day3.cha", write_chat, True),
    "elan": ("kid01_day3.eaf", write_elan, True),
    "textgrid": ("kid01_day3.TextGrid", write_textgrid, True),
    "textgrid-short": ("kid01_day3.TextGrid", write_textgrid_short, True),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_round_trips_times_text_speaker_and_source(tmp_path: Path, kind: str):
    name, write, has_speaker = WRITERS[kind]
    fmt = kind.split("-")[0]
    f = write(tmp_path / name)
    assert detect_format(f, f.read_text(encoding="utf-8").splitlines()[0]) == fmt
    caps = read_captions(f)
    assert caps.format == fmt and list(caps) == ["kid01_day3"]  # the uid is the file name without extension
    assert not caps.skipped and not caps.failed and caps.rows == len(UTTS)
    got = sorted((u.start, u.end, u.speaker, u.text, u.source) for u in caps["kid01_day3"])
    assert got == [(s, e, who if has_speaker else None, t, fmt) for s, e, who, t in UTTS]
    for u in caps["kid01_day3"]:
        assert u.id.startswith(f"kid01_day3/{fmt}/") and u.kept and (u.seg_start, u.seg_end) == (u.start, u.end)
        assert (u.no_speech_prob, u.avg_logprob, u.compression_ratio) == (0.0, 0.0, 0.0)
    # ids are stable across reruns and unique
    again = read_captions(f)
    assert [u.id for u in again["kid01_day3"]] == [u.id for u in caps["kid01_day3"]]
    assert len({u.id for u in caps["kid01_day3"]}) == len(UTTS)
    assert caps.sha256 == sha256_file(f)


def test_per_video_formats_are_registered_with_their_extensions():
    for name, ext in (("srt", ".srt"), ("webvtt", ".vtt"), ("chat", ".cha"), ("elan", ".eaf"),
                      ("textgrid", ".textgrid")):
        assert FORMATS[name].per_video and ext in FORMATS[name].extensions
    assert not FORMATS["egoclip"].per_video and not FORMATS["csv"].per_video


def test_srt_markup_missing_index_and_bad_blocks(tmp_path: Path):
    f = tmp_path / "v.srt"
    f.write_text("1\n00:00:01,000 --> 00:00:02,500\n<i>Hello</i> <font color=\"red\">there</font>\n{\\an8}MUM: hi\n\n"
                 "00:00:03,000 --> 00:00:04,000 X1:10 X2:20\nno index line\n\n"
                 "3\n00:00:05,000 --> 00:00:04,000\nbackwards\n\n"
                 "4\njust text, no timing\n\n"
                 "5\n00:00:06,000 --> 00:61:07,000\nminute 61\n\n"
                 "6\n00:00:07,000 --> 00:00:08,000\n<b></b>\n\n"
                 "7\n00:00:08,000 --> 00:00:09,000\nlast\n", encoding="utf-8")
    caps = read_captions(f)
    v = caps["v"]
    # tags and override codes go; a leading NAME: stays text (SRT has no speaker syntax)
    assert [(u.start, u.end, u.text, u.speaker) for u in v] == [
        (1.0, 2.5, "Hello there MUM: hi", None), (3.0, 4.0, "no index line", None), (8.0, 9.0, "last", None)]
    assert [u.id for u in v] == ["v/srt/1", "v/srt/2", "v/srt/7"]  # n = the block's position
    assert caps.rows == 7
    assert caps.skipped == {"end before start": 1, "no time": 1, "bad time": 1, "empty text": 1}
    assert caps.examples[0] == "v.srt:9: end before start"  # file:line of the block


def test_vtt_voices_markup_and_blocks_that_are_not_cues(tmp_path: Path):
    f = tmp_path / "v.vtt"
    f.write_text("WEBVTT - a title\nKind: captions\n\nSTYLE\n::cue { color: red }\n\nNOTE a comment\n--> not a cue\n\n"
                 "intro\n00:01.000 --> 00:02.000 line:0\n<v.loud Kid01>Doggy</v> &amp; <c.yellow>cat</c>\n\n"
                 "00:00:02.000 --> 00:00:03.000\nMUM: <i>not</i> a voice <00:00:02.500>tag\n\n"
                 "00:03.000 --> 00:04.000\n<v Mum>one</v>\n<v Dad>two</v>\n\n"
                 "00:04.000 --> 00:05.000\n<v Mum>a</v> <v Mum>b</v>\n\n"
                 "00:05.000 --> 00:04.000\n<v Mum>backwards\n\n"
                 "00:6.000 --> 00:07.000\n<v Mum>bad clock\n", encoding="utf-8")
    caps = read_captions(f)
    assert [(u.start, u.end, u.text, u.speaker) for u in caps["v"]] == [
        (1.0, 2.0, "Doggy & cat", "Kid01"),
        (2.0, 3.0, "MUM: not a voice tag", None),  # only voice tags name a speaker
        (3.0, 4.0, "one two", None),  # two voices: no speaker (noted)
        (4.0, 5.0, "a b", "Mum"),
    ]
    assert [u.id for u in caps["v"]] == ["v/webvtt/1", "v/webvtt/2", "v/webvtt/3", "v/webvtt/4"]
    assert caps.skipped == {"end before start": 1, "bad time": 1}
    assert caps.notes == {"several voices in one cue (no speaker)": 1}
    f.write_text("00:01.000 --> 00:02.000\nno header\n", encoding="utf-8")
    with pytest.raises(MediaError, match=r"v.vtt:1: not a known caption-file header"):
        read_captions(f)
    with pytest.raises(MediaError, match=r"v.vtt:1: a WebVTT file starts with the line WEBVTT"):
        read_captions(f, "webvtt")


def test_chat_text_is_the_words_as_spoken():
    assert chat_text("doggy doggy uh want xxx .") == "doggy doggy uh want."
    assert chat_text("&=laughs cause Santa_Claus ice+cream www dada hi there +/.") == \
        "cause Santa Claus ice cream dada hi there"
    assert chat_text("fr friend +\"/.") == "fr friend"
    assert chat_text("&+fr friend ?") == "fr friend?"
    assert chat_text("I I wanted um a ball ‡ yes , please .") == "I I wanted um a ball yes please."
    assert chat_text("0 .") == "" and chat_text("xxx yyy .") == "" and chat_text("") == ""


def test_chat_codes_bullets_and_skips(tmp_path: Path):
    f = tmp_path / "kid.cha"
    f.write_text(CHAT_HEADER + "@Media:\trecording_12, video\n" + (  # another name than the file's: fine
        "*MOT:\tlook at the doggy ! \x151500_3200\x15\n"
        "*CHI:\tdoggy [/] doggy &-uh want xxx . \x153500_5000\x15\n"
        "%com:\tlaughs\n"
        "*MOT:\tyou want the &~do doggy ?\n"  # no bullet
        "*CHI:\tno@s:fra (.) go+go [!] ! \x156000_7000\x15\n"
        "*MOT:\t<I think> [/] I think it's yyy a [: the] cat (..) [% comment] . \x157100_8000\x15\n"
        "*CHI:\t0 [=! cries] . \x158000_8500\x15\n"
        "*MOT:\tbackwards . \x159000_8900\x15\n"
    ) + "@End\n", encoding="utf-8")
    caps = read_captions(f)
    assert [(u.start, u.end, u.speaker, u.text, u.id) for u in caps["kid"]] == [
        (1.5, 3.2, "MOT", "look at the doggy!", "kid/chat/1"),
        (3.5, 5.0, "CHI", "doggy doggy uh want.", "kid/chat/2"),
        (6.0, 7.0, "CHI", "no go go!", "kid/chat/4"),
        (7.1, 8.0, "MOT", "I think I think it's a cat.", "kid/chat/5"),
    ]
    assert caps.rows == 7 and caps.skipped == {"no time": 1, "empty text": 1, "end before start": 1}
    assert "kid.cha:utterance 3: no time" in caps.examples


def test_elan_reads_independent_tiers_and_counts_dependent_ones(tmp_path: Path):
    eaf = pympi.Elan.Eaf()
    eaf.add_linguistic_type("utt")
    eaf.add_linguistic_type("translation", constraints="Symbolic_Association", timealignable=False)
    eaf.add_linguistic_type("words", constraints="Time_Subdivision")
    eaf.add_tier("Mother", ling="utt", part="MOT")
    eaf.add_tier("Child", ling="utt", part=" ")
    eaf.add_tier("Mother-tr", ling="translation", parent="Mother", part="MOT")
    eaf.add_tier("Mother-words", ling="words", parent="Mother", part="MOT")
    eaf.add_annotation("Mother", 1000, 2500, "look at the  doggy")
    eaf.add_annotation("Child", 3000, 4000, "doggy")
    eaf.add_annotation("Child", 4000, 4500, "   ")
    eaf.add_ref_annotation("Mother-tr", "Mother", 1500, "regarde le chien")
    eaf.add_annotation("Mother-words", 1000, 1500, "look")
    eaf.remove_tier("default")
    f = tmp_path / "kid.eaf"
    eaf.to_file(str(f))
    caps = read_captions(f)
    got = [(u.start, u.end, u.speaker, u.text) for u in caps["kid"]]
    assert got == [(1.0, 2.5, "MOT", "look at the doggy"), (3.0, 4.0, "Child", "doggy")]
    assert all(u.id.startswith("kid/elan/a") for u in caps["kid"])
    assert caps.notes == {"ELAN dependent tier not read": 2} and caps.skipped == {"empty text": 1}


def test_textgrid_pauses_point_tiers_and_utf16(tmp_path: Path):
    tiers = {"MOT": [(0.5, 1.25, "ça va"), (3.0, 4.0, "   ")], "CHI": [(1.5, 2.0, "oui")]}
    text = textgrid_long(tiers, 5.0).replace("size = 2", "size = 3") + (
        '    item [3]:\n        class = "TextTier"\n        name = "events"\n        xmin = 0\n        xmax = 5\n'
        "        points: size = 1\n        points [1]:\n            number = 2.2\n            mark = \"bang\"\n")
    f = tmp_path / "kid.TextGrid"
    f.write_text(text, encoding="utf-16")  # Praat's encoding for text that is not ASCII
    caps = read_captions(f)
    assert [(u.start, u.end, u.speaker, u.text, u.id) for u in caps["kid"]] == [
        (0.5, 1.25, "MOT", "ça va", "kid/textgrid/1-1"), (1.5, 2.0, "CHI", "oui", "kid/textgrid/2-1")]
    # empty and blank intervals are pauses: neither rows nor skips
    assert caps.rows == 2 and not caps.skipped and caps.notes == {"TextGrid point tier not read": 1}


def test_csv_speaker_column_is_kept(tmp_path: Path):
    f = tmp_path / "caps.csv"
    f.write_text("video,start,end,text,speaker\nkid,0.5,1.5,hello,MOT\nkid,2,3,hi,\n", encoding="utf-8")
    caps = read_captions(f)
    assert [(u.text, u.speaker) for u in caps["kid"]] == [("hello", "MOT"), ("hi", None)]
    f.write_text("video,start,end,text\nkid,0.5,1.5,hello\n", encoding="utf-8")
    assert read_captions(f)["kid"][0].speaker is None


# ----------------------------------------------------------------------------------------------
# Folders: mixed formats, broken files, the transcript map


def test_folder_mixes_formats_and_records_broken_files(tmp_path: Path):
    d = tmp_path / "transcripts"
    (d / "sub").mkdir(parents=True)
    write_srt(d / "a.srt")
    write_chat(d / "sub" / "b.cha")
    write_vtt(d / "c.vtt")
    (d / "bad_header.vtt").write_text("00:01.000 --> 00:02.000\nhi\n", encoding="utf-8")
    (d / "latin1.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n".encode("latin-1"))
    (d / "broken.TextGrid").write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = x\n',
                                       encoding="utf-8")
    (d / "empty.srt").write_text("1\nno timing at all\n", encoding="utf-8")
    (d / "garbage.eaf").write_text("<ANNOTATION_DOCUMENT><TIER", encoding="utf-8")
    caps = read_captions(d)
    assert caps.format == MIXED and sorted(caps) == ["a", "b", "c"]
    assert {u.source for u in caps["a"]} == {"srt"} and {u.source for u in caps["b"]} == {"chat"}
    assert {u.source for u in caps["c"]} == {"webvtt"} and caps["b"][0].speaker == "MOT"
    assert sorted(caps.failed) == ["bad_header.vtt", "broken.TextGrid", "empty.srt", "garbage.eaf", "latin1.srt"]
    assert "not a known caption-file header" in caps.failed["bad_header.vtt"]
    assert "latin1.srt:3: not UTF-8" in caps.failed["latin1.srt"]
    assert "not a readable TextGrid" in caps.failed["broken.TextGrid"]
    assert "no usable caption" in caps.failed["empty.srt"] and "no time" in caps.failed["empty.srt"]
    assert "not a readable ELAN file" in caps.failed["garbage.eaf"]
    assert len(caps.files) == 3 and caps.rows == 3 * len(UTTS)
    # a repaired file is another input: the folder's identity covers the broken files too
    before = caps.sha256
    write_srt(d / "empty.srt")
    repaired = read_captions(d)
    assert "empty" in repaired and "empty.srt" not in repaired.failed and repaired.sha256 != before


def test_broken_files_that_stay_errors(tmp_path: Path):
    # a single file given directly: the user's error
    f = tmp_path / "one.vtt"
    f.write_text("not a caption file\n", encoding="utf-8")
    with pytest.raises(MediaError, match="not a known caption-file header"):
        read_captions(f)
    # a folder where nothing is usable
    d = tmp_path / "none"
    d.mkdir()
    (d / "x.srt").write_text("junk\n", encoding="utf-8")
    (d / "y.cha").write_text("junk\n", encoding="utf-8")
    with pytest.raises(MediaError, match=r"no usable caption file in .*all 2 failed .*x.srt"):
        read_captions(d)
    # a broken multi-video file takes an unknown set of videos with it: it stops the read
    d = tmp_path / "multi"
    d.mkdir()
    write_srt(d / "a.srt")
    (d / "narrations.csv").write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(MediaError, match="narrations.csv:1: not a known caption-file header"):
        read_captions(d)
    # two files for one video
    (d / "narrations.csv").write_text("video,start,end,text\na,1,2,again\n", encoding="utf-8")
    with pytest.raises(MediaError, match="'a' has captions in two files"):
        read_captions(d)


def test_transcript_map_names_the_video_of_a_file(tmp_path: Path):
    d = tmp_path / "transcripts"
    (d / "day3").mkdir(parents=True)
    write_srt(d / "day3" / "session_7.srt")
    write_chat(d / "kid02.cha")
    m = tmp_path / "map.csv"
    m.write_text("video,file\nkid01/day3,day3/session_7.srt\n", encoding="utf-8")
    caps = read_captions(d, video_map=m)
    assert sorted(caps) == ["kid01/day3", "kid02"]  # mapped; the other keeps its own name
    assert caps["kid01/day3"][0].id == "kid01/day3/srt/1"
    assert read_video_map(m, ["day3/session_7.srt"])[0] == {"day3/session_7.srt": "kid01/day3"}
    # the map is part of the input's identity
    plain = read_captions(d)
    assert "session_7" in plain and plain.sha256 != caps.sha256
    # a single file: the path is relative to its folder
    one = read_captions(d / "kid02.cha", video_map=write_map(tmp_path, "kid01_day9,kid02.cha"))
    assert list(one) == ["kid01_day9"]
    # every row must be usable
    for rows, err in (("vid,path\n", r"map.csv:1: a transcript map needs the header video,file"),
                      ("video,file\nx,nowhere.srt\n", r"map.csv:2: nowhere.srt is not a caption file"),
                      ("video,file\nx,kid02.cha\ny,kid02.cha\n", r"map.csv:3: kid02.cha is mapped twice"),
                      ("video,file\n,kid02.cha\n", r"map.csv:2: a row needs two fields")):
        with pytest.raises(MediaError, match=err):
            read_captions(d, video_map=write_map(tmp_path, rows, raw=True))
    # a multi-video file names its videos itself
    (d / "narrations.csv").write_text("video,start,end,text\nz,1,2,hi\n", encoding="utf-8")
    with pytest.raises(MediaError, match="names the video of each row"):
        read_captions(d, video_map=write_map(tmp_path, "x,narrations.csv"))


def write_map(folder: Path, rows: str, raw: bool = False) -> Path:
    m = folder / "map.csv"
    m.write_text(rows if raw else f"video,file\n{rows}\n", encoding="utf-8")
    return m
