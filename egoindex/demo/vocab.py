"""What a demo scene can be: rooms, objects, colours, actions, floor names, and the :class:`Scene`
record (validated on creation). Everything else in :mod:`egoindex.demo` draws or narrates these.
"""

from __future__ import annotations

from dataclasses import dataclass
from egoindex.errors import ConfigError

RGB = tuple[int, int, int]

#: Rooms (backgrounds).  Each has its own palette and furniture so that a frame alone identifies it.
ROOMS: tuple[str, ...] = ("kitchen", "living room", "bedroom", "bathroom", "garden", "playroom")
#: Objects, each drawn as a distinct silhouette.
OBJECTS: tuple[str, ...] = (
    "ball",
    "cup",
    "block",
    "book",
    "spoon",
    "banana",
    "car",
    "teddy bear",
    "bottle",
    "star",
)
#: Object colours (name -> RGB).  Chosen to be far apart in hue so colour is a reliable cue.
COLOURS: dict[str, RGB] = {
    "red": (214, 38, 38),
    "blue": (36, 92, 220),
    "green": (44, 164, 64),
    "yellow": (246, 212, 40),
    "purple": (136, 58, 190),
    "orange": (248, 134, 26),
}
#: Actions.  ``grabs`` and ``shakes`` involve the wearer's own (skin-coloured) hand and arm.
ACTIONS: tuple[str, ...] = ("rolls", "bounces", "falls", "spins", "grabs", "shakes")
#: Directional actions of the motion corpus (``egoindex demo-data --motion``), in opposite pairs.
#: Each pair draws the same path in opposite directions (see ``SceneRenderer.pose``), so which one a
#: scene shows is visible only from the order of its frames, never from any single frame or from
#: the set of frames. Kept apart from :data:`ACTIONS` so that the default corpus, which draws its
#: actions from :data:`ACTIONS`, stays byte-identical.
MOTION_ACTIONS: tuple[str, ...] = ("slides left", "slides right", "rises", "sinks")
#: Each directional action's opposite (the same path, time-reversed).
MOTION_OPPOSITE: dict[str, str] = {
    "slides left": "slides right",
    "slides right": "slides left",
    "rises": "sinks",
    "sinks": "rises",
}
#: What the floor of each room is called in narration ("... bounces on the rug").
SURFACES: dict[str, str] = {
    "kitchen": "floor",
    "living room": "rug",
    "bedroom": "carpet",
    "bathroom": "tiles",
    "garden": "grass",
    "playroom": "mat",
}

SKIN_TONES: tuple[RGB, ...] = ((247, 205, 172), (236, 184, 146), (212, 150, 110), (170, 112, 76), (120, 78, 52))
SLEEVES: tuple[RGB, ...] = ((250, 250, 245), (160, 200, 235), (245, 180, 200), (190, 225, 170), (255, 225, 150))


@dataclass(frozen=True)
class Scene:
    """What one scene shows.  ``variant`` seeds per-scene details (object size and start side,
    hand skin tone, motion speeds ...), so two scenes with the same words still look a little
    different.  ``room_seed`` seeds the room itself (furniture layout and colours); the corpus
    gives every scene in the same room of the same home the same ``room_seed``, as a real home's
    kitchen looks the same every day.  Why that matters: if every scene had its own room, the
    background alone would identify the scene and a model could memorise backgrounds instead of
    learning what the narration talks about (the object).  ``None`` falls back to ``variant``."""

    room: str
    object: str
    colour: str
    action: str
    duration: float
    variant: int = 0
    room_seed: int | None = None

    def __post_init__(self) -> None:
        if self.room not in ROOMS:
            raise ConfigError(f"unknown room {self.room!r}; expected one of {ROOMS}")
        if self.object not in OBJECTS:
            raise ConfigError(f"unknown object {self.object!r}; expected one of {OBJECTS}")
        if self.colour not in COLOURS:
            raise ConfigError(f"unknown colour {self.colour!r}; expected one of {tuple(COLOURS)}")
        if self.action not in ACTIONS and self.action not in MOTION_ACTIONS:
            raise ConfigError(f"unknown action {self.action!r}; expected one of {ACTIONS + MOTION_ACTIONS}")
        if not self.duration > 0:
            raise ConfigError("scene duration must be positive")
