"""The offline verb/noun tagger (egoindex/metrics/tags.py) and its accuracy on a hand-labelled sample."""

from __future__ import annotations

from egoindex.metrics.tags import lemma, tag_text

# (caption, verb, nouns), labelled by hand: the main verb's base form, every noun in singular
# (subjects included). Demo-corpus narrations (egoindex/demo/plan.py) and Ego4D-style narrations.
SAMPLE: list[tuple[str, str, set[str]]] = [
    ("look, the red ball rolls across the floor", "roll", {"ball", "floor"}),
    ("mommy rolls the blue car to the baby in the kitchen", "roll", {"mommy", "car", "baby", "kitchen"}),
    ("a green block is rolling on the rug", "roll", {"block", "rug"}),
    ("see, the yellow cup rolls away", "roll", {"cup"}),
    ("an orange ball bounces on the mat", "bounce", {"ball", "mat"}),
    ("the purple star bounces up and down in the playroom", "bounce", {"star", "playroom"}),
    ("wow, the red spoon is bouncing", "bounce", {"spoon"}),
    ("look, a blue book falls on the carpet", "fall", {"book", "carpet"}),
    ("oops, the green bottle fell off the table", "fall", {"bottle", "table"}),
    ("the yellow banana drops to the grass in the garden", "drop", {"banana", "grass", "garden"}),
    ("the red car spins around", "spin", {"car"}),
    ("look, the blue star is spinning in the bedroom", "spin", {"star", "bedroom"}),
    ("the baby grabs the orange cup", "grab", {"baby", "cup"}),
    ("look, a little hand picks up the green block", "pick", {"hand", "block"}),
    ("the baby reaches for the purple book in the bathroom", "reach", {"baby", "book", "bathroom"}),
    ("the baby shakes the red bottle", "shake", {"baby", "bottle"}),
    ("look, the baby is shaking a yellow spoon", "shake", {"baby", "spoon"}),
    ("listen, the baby shakes the blue ball in the living room", "shake", {"baby", "ball", "living", "room"}),
    ("#C C picks up the cup", "pick", {"cup"}),
    ("#C C picks a bag of clothes from the floor", "pick", {"bag", "clothes", "floor"}),
    ("#C C washes the plates in the sink", "wash", {"plate", "sink"}),
    ("#C C opens the fridge", "open", {"fridge"}),
    ("#C C cuts the onion with a knife", "cut", {"onion", "knife"}),
    ("#C C stirs the soup in the pot", "stir", {"soup", "pot"}),
    ("#C C places the bowl on the table", "place", {"bowl", "table"}),
    ("#C C drops the spoon", "drop", {"spoon"}),
    ("#C C wipes the counter with a cloth", "wipe", {"counter", "cloth"}),
    ("#C C closes the drawer", "close", {"drawer"}),
    ("#C C pours water into the glass", "pour", {"water", "glass"}),
    ("#C C holds the phone", "hold", {"phone"}),
    ("#C C turns on the tap", "turn", {"tap"}),
    ("#C C throws the paper into the bin", "throw", {"paper", "bin"}),
    ("#C C folds the towel", "fold", {"towel"}),
    ("#C C peels the potato", "peel", {"potato"}),
    ("#O a man hands a knife to C", "hand", {"man", "knife"}),
    ("#C C adjusts the camera", "adjust", {"camera"}),
    ("#C C walks towards the door", "walk", {"door"}),
    ("#C C scrubs the pan with a sponge", "scrub", {"pan", "sponge"}),
    ("#C C puts the lid on the pot", "put", {"lid", "pot"}),
    ("#C C taps the screen of the phone", "tap", {"screen", "phone"}),
]


def accuracy() -> tuple[float, float]:
    """Verb accuracy (first verb equals the label) and noun accuracy (noun set equals the label), in %."""
    v = n = 0
    for text, verb, nouns in SAMPLE:
        got_v, got_n = tag_text(text)
        v += got_v[:1] == [verb]
        n += set(got_n) == nouns
    return 100.0 * v / len(SAMPLE), 100.0 * n / len(SAMPLE)


def test_lemmas_of_simple_inflections() -> None:
    assert [lemma(w) for w in ("picks", "grabbing", "dropped", "washes", "carries", "took", "stirring", "placed")] == [
        "pick", "grab", "drop", "wash", "carry", "take", "stir", "place"]
    assert lemma("table") == "table"


def test_ego4d_narration() -> None:
    assert tag_text("#C C picks up the cup") == (["pick"], ["cup"])
    assert tag_text("okay") == ([], [])


def test_accuracy_on_the_hand_labelled_sample() -> None:
    verb_acc, noun_acc = accuracy()
    print(f"tagger accuracy on {len(SAMPLE)} sentences: verb {verb_acc:.1f}%, noun {noun_acc:.1f}%")
    assert len(SAMPLE) == 40
    assert verb_acc >= 95.0 and noun_acc >= 85.0
