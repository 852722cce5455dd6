"""Verb and noun tags of a caption, offline: a lexicon tagger shipped with the package.

Why: EgoNCE (``egoindex.train.loss.EgoNCELoss``) and EgoMCQ rows need the verbs and nouns of a
caption; EgoClip gets them from Ego4D's taxonomy, a user's speech has none. A real POS tagger was
checked and rejected: spaCy and NLTK need a model/data download at run time, stanza/flair too, and
lemminflect/simplemma lemmatise but do not tag. So: a verb lexicon (the everyday hand and body
actions of egocentric video, in base form) plus a small lemmatiser of regular inflections
("picks" -> "pick", "grabbing" -> "grab", "dropped" -> "drop") and a few irregular forms. See :func:`tag_text` for the rule. Ego4D markers (``#C C``, ``#O``) are stopwords
(:data:`egoindex.metrics.mir.STOPWORDS`). Accuracy on a hand-labelled sample: docs/training.md, EgoNCE.
"""

from __future__ import annotations

from egoindex.metrics.mir import content_word_list

__all__ = ["MODIFIERS", "PARTICLES", "VERBS", "lemma", "tag_text"]

#: Base forms of the verbs the tagger recognises.
VERBS: frozenset[str] = frozenset(
    """
    pick grab take hold put place drop throw toss catch lift raise lower carry move push pull slide
    roll bounce fall spin shake turn rotate twist flip open close shut lock unlock press tap touch
    wipe clean wash rinse dry scrub sweep mop brush cut chop slice peel dice mix stir pour fill empty
    cook fry boil bake heat fold unfold hang stretch tie untie wrap unwrap cover uncover insert remove
    fix screw unscrew hammer drill paint draw write read type scroll click plug unplug adjust arrange
    sort stack unstack load unload pack unpack eat drink bite chew sip taste smell look see watch
    check inspect search reach walk run step climb sit stand kneel bend squat jump dance play kick
    hit give hand show point wave clap scratch rub squeeze knead spread sprinkle measure weigh dip
    serve scoop grate blend crack whisk set keep store hide collect gather dig plant water pluck
    sew knit iron cross enter exit leave go come follow bring fetch get use operate hit rock swing
    drag lay rest shift tilt wear remove wave kiss hug feed bathe change talk say sing listen
    """.split()
)
#: Words that follow a verb and belong to it ("pick up"), never nouns.
PARTICLES: frozenset[str] = frozenset("up down on off out in over away back around across round through along towards toward".split())
#: Colours, sizes, numbers and other modifiers that are never the noun.
MODIFIERS: frozenset[str] = frozenset(
    """
    red blue green yellow purple orange black white brown pink grey gray little big small large
    some all any each other another more left right one two three four five few new old now
    again look see wow oops listen next
    """.split()
)
_IRREGULAR: dict[str, str] = {
    "took": "take", "taken": "take", "fell": "fall", "fallen": "fall", "threw": "throw", "thrown": "throw",
    "caught": "catch", "held": "hold", "put": "put", "cut": "cut", "set": "set", "hit": "hit", "ate": "eat",
    "drank": "drink", "saw": "see", "went": "go", "came": "come", "brought": "bring", "got": "get", "gave": "give",
    "shook": "shake", "spun": "spin", "ran": "run", "sat": "sit", "stood": "stand", "hung": "hang", "laid": "lay",
    "kept": "keep", "left": "leave", "wore": "wear", "dug": "dig", "swung": "swing", "said": "say", "sang": "sing",
}


def lemma(word: str) -> str:
    """The base form of ``word`` when it is an inflected lexicon verb, else ``word``:
    irregular forms, then -s/-es/-ies, -ing, -ed with doubled consonants and silent e."""
    w = word.lower()
    if w in VERBS:
        return w
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    stems: list[str] = []
    if w.endswith("ies"):
        stems.append(w[:-3] + "y")
    if w.endswith("es"):
        stems.append(w[:-2])
    if w.endswith("s"):
        stems.append(w[:-1])
    for suf in ("ing", "ed"):
        if w.endswith(suf) and len(w) > len(suf) + 1:
            s = w[: -len(suf)]
            stems += [s, s + "e"]
            if len(s) > 2 and s[-1] == s[-2]:
                stems.append(s[:-1])
            if suf == "ed" and s.endswith("i"):
                stems.append(s[:-1] + "y")
    for s in stems:
        if s in VERBS:
            return s
    return w


def _singular(word: str) -> str:
    """A plural noun's singular by the regular rules (nouns are matched across captions)."""
    if word in {"clothes", "glasses", "scissors", "pants", "jeans", "tongs"}:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def tag_text(text: str) -> tuple[list[str], list[str]]:
    """(verbs, nouns) of a caption: its inflected lexicon verbs, lemmatised, in order (several when
    it chains actions, "picks ... and puts ..."), or else its first base-form lexicon verb; every
    other content word that is not a particle, number or modifier is a noun (singular), subjects
    included. ``"#C C picks up the cup"`` -> (["pick"], ["cup"])."""
    words = [w for w in content_word_list(text) if w not in MODIFIERS]
    lemmas = [lemma(w) for w in words]
    # An inflected verb ("picks", "is shaking") is a verb; a base form ("hand", "water", "tap") is
    # one only when the caption has no inflected verb, and then only the first of them.
    inflected = [i for i, (w, m) in enumerate(zip(words, lemmas)) if m in VERBS and w != m]
    base = [i for i, m in enumerate(lemmas) if m in VERBS]
    verb_at = set(inflected) if inflected else set(base[:1])
    verbs: list[str] = []
    nouns: list[str] = []
    for i, w in enumerate(words):
        if i in verb_at:
            if lemmas[i] not in verbs:
                verbs.append(lemmas[i])
            continue
        if w in PARTICLES or w.isdigit():
            continue
        n = _singular(w)
        if n not in nouns:
            nouns.append(n)
    return verbs, nouns
