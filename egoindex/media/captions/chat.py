"""CHAT captions (``chat``, ``.cha``, CHILDES; parsed by pylangacq), one file per video.

One utterance per ``*XXX:`` line; times from its bullet ``\\x15start_end\\x15`` (ms; an utterance
without a bullet is skipped as ``no time``); speaker = the tier code (``CHI``, ``MOT``); ids
``{uid}/chat/{n}``, n = the utterance's position. Text (:func:`chat_text`): the words as spoken.
"""

from __future__ import annotations

from pathlib import Path

import pylangacq

from egoindex.errors import MediaError
from egoindex.media.captions.registry import CaptionFormat, Captions
from egoindex.media.captions.rows import _caption, _span


#: CHAT's codes for speech that has no words: unintelligible (xxx), phonological (yyy), untranscribed (www).
CHAT_UNSPOKEN = frozenset({"xxx", "yyy", "www"})


def chat_text(audible: str) -> str:
    """A CHAT utterance's caption from pylangacq's ``audible`` form, which has already resolved
    the main line to what was said: retracings ``<I think> [/] I think`` keep both (both were
    said), ``word [: target]`` keeps ``word``, ``(be)cause`` is ``cause``, ``&-uh`` is ``uh``,
    ``no@s:fra`` is ``no`` and bracketed codes (``[/]``, ``[?]``, ``[% comment]``, pauses ``(.)``)
    are gone. Then: events ``&=laughs`` and the no-word codes of :data:`CHAT_UNSPOKEN` are
    dropped, so are tokens without a letter (``0``, ``+...``, ``„``, ``‡``, ``,``); the ``&+``
    of a fragment is dropped (``&+fr`` -> ``fr``: it was said); compounds and multi-word names
    are spoken as words (``ice+cream`` -> ``ice cream``, ``Santa_Claus`` -> ``Santa Claus``);
    a final ``.``, ``?`` or ``!`` is kept on the last word."""
    tokens = audible.split()
    words = []
    for t in tokens:
        if t.startswith("&="):
            continue
        t = t.removeprefix("&+").removeprefix("&-").removeprefix("&~")
        if t.lower() in CHAT_UNSPOKEN or not any(ch.isalpha() for ch in t):
            continue
        words.append(t.replace("+", " ").replace("_", " "))
    if words and tokens[-1] in (".", "?", "!"):
        words[-1] += tokens[-1]
    return " ".join(words)


def read_chat(path: Path, text: str, out: Captions) -> None:
    """CHAT main tiers -> the utterances of ``out.video``; pylangacq parses leniently
    (``strict=False``: a cosmetic header slip such as an age ``2;6.`` does not lose the file, nor
    does a ``@Media`` name other than the file's, which a ``--transcript-map`` file may have) and
    the times are checked here, so one bad bullet is one skipped utterance."""
    try:
        utterances = pylangacq.CHAT.from_strs([text], ids=[path.name], parallel=False, strict=False).utterances()
    except Exception as e:  # the Rust parser raises ValueError and others: the file is the problem
        raise MediaError(f"{path}: not a readable CHAT file ({type(e).__name__}: {e})") from e
    seen: dict[str, set[str]] = {}
    for n, u in enumerate(utterances, 1):
        out.rows += 1
        where = f"{path.name}:utterance {n}"
        if not u.time_marks:
            out.skip(where, "no time")
            continue
        span = _span(out, where, u.time_marks[0] / 1000, u.time_marks[1] / 1000)
        if span is None:
            continue
        caption = chat_text(u.audible or "")
        if not caption:
            out.skip(where, "empty text")
            continue
        _caption(out.video, seen, out, where, f"{out.video}/chat/{n}", span[0], span[1], caption, "chat",
                 u.participant or None)


CHAT = CaptionFormat("chat", "CHILDES CHAT transcript, one file per video (first line @UTF8; time bullets)",
                     (".cha",), read_chat, lambda line: line.strip() == "@UTF8", per_video=True)
