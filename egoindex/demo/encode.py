"""Render and encode demo videos (PyAV, with the narration muxed in) in parallel worker subprocesses.

Why plain subprocesses instead of multiprocessing: see :func:`worker_main`.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from egoindex.demo.plan import PlannedVideo, plan_video
from egoindex.demo.scenes import VideoRenderer

_CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


# --------------------------------------------------------------------------------------------
# rendering + encoding


def _resample_linear(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Linear-interpolation resampling; only used to *up*-sample for Opus, where it is adequate."""
    n_out = int(round(audio.size * sr_out / sr_in))
    x = np.arange(n_out, dtype=np.float64) * (sr_in / sr_out)
    return np.interp(x, np.arange(audio.size), audio).astype(np.float32)


def _encode_video(
    plan: PlannedVideo,
    tmp_path: Path,
    container_format: str,
    seed: int,
    fps: int,
    size: tuple[int, int],
    report: Callable[[int], None],
) -> None:
    """Render every frame of ``plan`` and mux it with the narration track into ``tmp_path``."""
    import av  # local import: only needed when actually writing videos

    webm = container_format == "webm"
    n_frames = int(round(plan.duration * fps))
    cam_seed = int(np.random.SeedSequence([seed, plan.index, 404]).generate_state(1)[0])
    renderer = VideoRenderer(cam_seed, size, duration_hint=plan.duration)
    if webm:
        audio_rate = 48000
        audio = _resample_linear(plan.audio, plan.sample_rate, audio_rate)
    else:
        audio_rate = plan.sample_rate
        audio = plan.audio
    n_audio = int(round(plan.duration * audio_rate))
    audio = np.pad(audio, (0, max(0, n_audio - audio.size)))[:n_audio].astype(np.float32)

    with av.open(str(tmp_path), mode="w", format=container_format, options={"fflags": "+bitexact"}) as out:
        if webm:
            vs = out.add_stream("libvpx", rate=fps, options={"deadline": "realtime", "cpu-used": "8", "threads": "1", "crf": "10", "b": "800k"})
            aus = out.add_stream("libopus", rate=audio_rate, layout="mono")
            aus.bit_rate = 48000
        else:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "superfast", "crf": "25", "threads": "1"})
            aus = out.add_stream("aac", rate=audio_rate, layout="mono")
            aus.bit_rate = 64000
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        # bit-exact: no encoder version strings / random IDs, so identical input -> identical bytes
        vs.codec_context.flags |= av.codec.context.Flags.bitexact
        aus.codec_context.flags |= av.codec.context.Flags.bitexact

        audio_tb = Fraction(1, audio_rate)
        bounds = [(s.start, s.end, s.scene()) for s in plan.scenes]
        k = 0
        a_done = 0
        pending = 0
        for f in range(n_frames):
            t = f / fps
            while k < len(bounds) - 1 and t >= bounds[k][1]:
                k += 1
            start, _end, scene = bounds[k]
            img = renderer.render_image(scene, t - start, t)
            frame = av.VideoFrame.from_image(img)
            frame.pts = f
            out.mux(vs.encode(frame))
            # audio goes in ~1 s chunks: cheap per call, and still finely interleaved with video
            if f == n_frames - 1 or (f + 1) % fps == 0:
                a_end = n_audio if f == n_frames - 1 else int(round((f + 1) * audio_rate / fps))
                if a_end > a_done:
                    af = av.AudioFrame.from_ndarray(audio[None, a_done:a_end], format="fltp", layout="mono")
                    af.sample_rate = audio_rate
                    af.pts = a_done
                    af.time_base = audio_tb
                    out.mux(aus.encode(af))
                    a_done = a_end
            pending += 1
            if pending >= 15:
                report(pending)
                pending = 0
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    if pending:
        report(pending)


@dataclass(frozen=True)
class VideoJob:
    index: int
    rel_path: str
    out_dir: str
    seconds: float
    seed: int
    fps: int
    size: tuple[int, int]
    reuse_existing: bool


def temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.part")


def make_video(job: VideoJob, report: Callable[[int], None]) -> dict[str, Any]:
    """Plan, render and encode one video (temp file + rename); return its ground-truth entry."""
    plan = plan_video(job.index, job.rel_path, job.seconds, job.seed)
    final = Path(job.out_dir) / job.rel_path
    if job.reuse_existing and final.is_file() and final.stat().st_size > 0:
        report(int(round(job.seconds * job.fps)))
        return plan.ground_truth()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    fmt = _CONTAINERS[final.suffix.lower()]
    try:
        _encode_video(plan, tmp, fmt, job.seed, job.fps, job.size, report)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return plan.ground_truth()


def worker_main() -> None:
    """Entry point of a worker process: read one job (JSON) per stdin line, answer on stdout with
    ``P <frames>`` progress lines and one ``R <ground-truth JSON>`` line per job.

    Why plain subprocesses instead of multiprocessing: ``spawn`` re-imports the caller's
    ``__main__`` (breaks ``python -c``/stdin scripts and re-runs unguarded scripts) and ``fork``
    is unsafe when the caller has threads (rich, pytest plugins, ASR runtimes).  A fresh
    interpreter that imports only this module has neither problem.
    """
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else printed to stdout (e.g. by a library) must not corrupt the protocol
    sys.stdout = sys.stderr

    def report(n: int) -> None:
        proto.write(f"P {n}\n")

    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        spec["size"] = tuple(spec["size"])
        result = make_video(VideoJob(**spec), report)
        proto.write("R " + json.dumps(result, ensure_ascii=False) + "\n")
    proto.close()


class WorkerProcess:
    """Parent-side handle of one worker subprocess (non-blocking line protocol)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])  # so the worker imports *this* egoindex
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONIOENCODING"] = "utf-8"
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from egoindex.demo.encode import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.job: VideoJob | None = None

    def send(self, job: VideoJob) -> None:
        self.job = job
        self.stdin.write((json.dumps(asdict(job), ensure_ascii=False) + "\n").encode("utf-8"))
        self.stdin.flush()

    def close_input(self) -> None:
        if not self.stdin.closed:
            self.stdin.close()

    def read_lines(self) -> list[str] | None:
        """Lines available now; None at end of stream (worker exited)."""
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [ln.decode("utf-8") for ln in lines]

    def error_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        self.close_input()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def run_in_workers(jobs: list[VideoJob], n_workers: int, advance: Callable[[int], None]) -> dict[int, dict[str, Any]]:
    """Run ``jobs`` on ``n_workers`` worker subprocesses, one video at a time per worker."""
    results: dict[int, dict[str, Any]] = {}
    todo = list(jobs)
    workers = [WorkerProcess() for _ in range(n_workers)]
    sel = selectors.DefaultSelector()
    try:
        for w in workers:
            sel.register(w.fd, selectors.EVENT_READ, w)
            w.send(todo.pop(0))
        active = len(workers)
        while active:
            for key, _ in sel.select(timeout=1.0):
                w = key.data
                lines = w.read_lines()
                if lines is None:  # worker exited
                    sel.unregister(w.fd)
                    active -= 1
                    if w.job is not None:
                        w.proc.wait()
                        raise RuntimeError(
                            f"demo corpus worker failed on {w.job.rel_path!r} (exit code {w.proc.returncode}):\n{w.error_text()}"
                        )
                    continue
                for line in lines:
                    if line.startswith("P "):
                        advance(int(line[2:]))
                    elif line.startswith("R ") and w.job is not None:
                        results[w.job.index] = json.loads(line[2:])
                        w.job = None
                        if todo:
                            w.send(todo.pop(0))
                        else:
                            w.close_input()
    finally:
        for w in workers:
            if w.proc.poll() is None and w.job is not None:
                w.proc.kill()  # interrupted or failed: do not leave our workers running
            w.stop()
        sel.close()
    return results


