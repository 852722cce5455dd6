"""``egoindex bench ...``: benchmark commands over a store; the logic is :mod:`egoindex.bench`
(one module per benchmark: ``mcq``, ``mir``, ``charades``, ``motion``, ``retrieval``, ``alignment``,
``forced_choice``, ``compare``).

Those modules are imported inside the commands that run a benchmark: they pull torch
(raw-video embedding) and lancedb, which ``egoindex --help`` and ``bench compare`` should not pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from egoindex.bench.compare import compare as compare_reports
from egoindex.bench.result import BenchResult, default_out_dir
from egoindex.cli.common import console, open_store
from egoindex.core.report import fmt_value
from egoindex.errors import ConfigError
from egoindex.metrics.egomcq import DEFAULT_MIN_GAP_S


def _show(result: BenchResult, keys: list[str]) -> None:
    """Print the headline metrics and where the report went."""
    meta = result.meta
    sha = str(meta.get("checkpoint_sha256") or "no-checkpoint")[:12]
    console.print(f"[bold]{result.name}[/bold]  model {meta.get('model')} @ {sha}")
    for k in keys:
        if k in result.metrics:
            head, _, tail = k.partition("_")
            chance = result.metrics.get(f"{head}_chance_{tail}")  # t2c_R@5 -> t2c_chance_R@5
            extra = f"  (chance {fmt_value(chance)})" if chance is not None else ""
            console.print(f"  {k:>24}: {fmt_value(result.metrics[k])}{extra}")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for kind, p in result.written.items():
        console.print(f"  {kind}: {p}")


def mcq(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX (its model embeds the queries and clips)."),
    egomcq_file: Optional[Path] = typer.Option(
        None, "--egomcq", help="EgoMCQ file (official egomcq.json or a generated one)."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Score the choices from the raw videos in DIR "
                                          "(DIR/{video_uid}.mp4, or the store's source path under DIR); "
                                          "without it, from the store's clip vectors."),
    num_frames: int = typer.Option(
        4, "--num-frames", min=1, help="Frames per clip from raw video (midpoints of equal intervals)."),
    generate: Optional[int] = typer.Option(
        None, "--generate", min=1, help="Generate N questions from the store's val videos."),
    seed: int = typer.Option(0, "--seed", help="Seed of --generate."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where --generate writes the questions (official format; "
                                       "default OUT_DIR/NAME_questions.json)."),
    min_gap: float = typer.Option(DEFAULT_MIN_GAP_S, "--min-gap", min=0.0,
                                  help="Intra-video distractors start/end at least this many "
                                  "seconds from the answer clip (--generate)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Report folder (default STORE/bench)."),
    name: Optional[str] = typer.Option(None, "--name", help="Report name (default egomcq or egomcq_generated)."),
    short_side: int = typer.Option(
        256, "--short-side", help="Raw frames are scaled like the ingest: short side this (0 = keep)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Frames per forward pass (raw videos)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """EgoMCQ (5-way multiple choice): accuracy on inter-video (type 1) and intra-video (type 2) questions.

    Official file: the choices are embedded from the raw videos (4 frames per clip by default).
    --generate N: questions from the store's val videos (query = an utterance, answer = the clip
    window containing it, inter distractors from 4 other val videos, intra distractors from the
    same video at least --min-gap s away), written in the official format and scored with the
    store's clip vectors. Writes NAME.json, NAME.md and NAME_accuracy.png to --out-dir.

    Examples:
      egoindex bench mcq demo/store --egomcq egomcq.json --videos ego4d/v2/full_scale
      egoindex bench mcq demo/store --generate 500 --seed 0 --out mcq.json
    """
    if (egomcq_file is None) == (generate is None):  # before opening the store: the usage is wrong either way
        raise ConfigError("give exactly one of --egomcq FILE or --generate N")
    from egoindex.bench.mcq import run_mcq  # torch + lancedb

    r = run_mcq(open_store(store, device=device), out_dir or default_out_dir(store), egomcq_file=egomcq_file,
                generate=generate, seed=seed, out_file=out, min_gap_s=min_gap, videos_dir=videos, num_frames=num_frames,
                short_side=short_side, batch_size=batch_size, name=name, progress=not quiet)
    _show(r, ["inter_acc", "intra_acc", "overall_acc", "chance_acc", "n_inter", "n_intra"])


def mir(
    store: Optional[str] = typer.Argument(None, help="Store folder or s3://BUCKET/PREFIX (not needed with --sim)."),
    sim: Optional[Path] = typer.Option(
        None, "--sim", help="Similarity matrix [videos x sentences] (.npy) of any model."),
    relevance: Optional[Path] = typer.Option(None, "--relevance", help="Relevance matrix (.npy, or EPIC's .pkl)."),
    epic_csv: Optional[Path] = typer.Option(
        None, "--epic-csv", help="EPIC_100_retrieval_test.csv (one row per segment)."),
    sentences: Optional[Path] = typer.Option(None, "--sentences", help="EPIC_100_retrieval_test_sentence.csv."),
    videos: Optional[Path] = typer.Option(
        None, "--videos", help="EPIC videos: DIR/{video_id}.MP4 (or DIR/P01/[videos/]P01_01.MP4)."),
    classes: Optional[Path] = typer.Option(None, "--classes",
                                           help="Own store: csv of clip_id, verb_class, noun_classes "
                                           "(official relevance formula); without it the word-overlap proxy."),
    num_frames: int = typer.Option(4, "--num-frames", min=1, help="Frames per EPIC segment."),
    label: Optional[str] = typer.Option(
        None, "--label", help="Model name for a --sim report (default: the file's stem)."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out-dir", help="Report folder (default STORE/bench, or ./bench with --sim)."),
    name: Optional[str] = typer.Option(None, "--name", help="Report name (default mir, epic_mir or mir_store)."),
    short_side: int = typer.Option(256, "--short-side", help="Raw frames are scaled like the ingest: short side this."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Frames per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """EPIC-Kitchens-100 multi-instance retrieval: mAP and nDCG for video->text, text->video and their average.

    Three inputs: (1) --sim S.npy --relevance R.pkl|npy scores any model's matrices; (2) STORE
    --epic-csv --sentences --relevance --videos embeds EPIC's segments and sentences with the
    store's model; (3) STORE alone: the store's val clips with text against their texts, relevance
    from --classes (official formula) or the word-overlap proxy (not comparable with EPIC's numbers).

    Examples:
      egoindex bench mir --sim sim.npy --relevance caption_relevancy_EPIC_100_retrieval_test.pkl
      egoindex bench mir demo/store --epic-csv EPIC_100_retrieval_test.csv --sentences EPIC_100_retrieval_test_sentence.csv --relevance caption_relevancy_EPIC_100_retrieval_test.pkl --videos EPIC-KITCHENS
      egoindex bench mir demo/store [--classes classes.csv]
    """
    from egoindex.bench.mir import mir_from_epic, mir_from_matrices, mir_from_store  # torch + lancedb

    if sim is not None:
        if relevance is None:
            raise ConfigError("--sim needs --relevance")
        od = out_dir or (default_out_dir(store) if store is not None else Path("bench"))
        r = mir_from_matrices(sim, relevance, od, name=name or "mir", label=label)
    else:
        if store is None:
            raise ConfigError("give a STORE, or --sim and --relevance")
        s = open_store(store, device=device)
        od = out_dir or default_out_dir(store)
        if epic_csv is not None:
            if sentences is None or relevance is None or videos is None:
                raise ConfigError("--epic-csv needs --sentences, --relevance and --videos")
            r = mir_from_epic(s, epic_csv, sentences, relevance, videos, od, num_frames=num_frames,
                              short_side=short_side, batch_size=batch_size, name=name or "epic_mir", progress=not quiet)
        else:
            r = mir_from_store(s, od, classes=classes, name=name or "mir_store")
    _show(r, ["mAP_v2t", "mAP_t2v", "mAP_avg", "nDCG_v2t", "nDCG_t2v", "nDCG_avg", "n_videos", "n_sentences"])


def charades(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX (its model embeds the videos and the class prompts)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Charades(-Ego) csv (id, ..., actions, length)."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Charades_v1_classes.txt (c000 Holding some clothes)."),
    generate: bool = typer.Option(False, "--generate", help="Write the demo corpus' csv and class list (from the "
                                  "store's ground_truth.json) to --out-dir and score them."),
    split: str = typer.Option("val", "--split", help="--generate: the store split whose videos are annotated (or all)."),
    level: str = typer.Option("video", "--level", help="video (one vector per video, multi-label) | segment."),
    template: Optional[list[str]] = typer.Option(None, "--template", help="Prompt template, {} = class name "
                                                 "(repeatable, averaged; default the raw name, as EgoVLP)."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Embed from raw files DIR/{id}.mp4; without it, "
                                          "from the store's clip vectors."),
    num_frames: int = typer.Option(4, "--num-frames", min=1, help="Frames per video or segment (raw videos)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Report folder (default STORE/bench)."),
    name: Optional[str] = typer.Option(None, "--name", help="Report name (default charades_LEVEL)."),
    short_side: int = typer.Option(256, "--short-side", help="Raw frames are scaled like the ingest: short side this."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Frames per forward pass (raw videos)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Zero-shot Charades-Ego multi-label action recognition: mAP (charades_map) over class-name prompts.

    Every class name is a text prompt, every video (--level video) or annotated segment
    (--level segment) one vector, scores = cosine; mAP = mean per-class AP over the classes with
    a positive, printed beside its chance (the exact mAP of random scores).

    Examples:
      egoindex bench charades demo/store --annotations CharadesEgo_v1_test_only1st.csv --classes Charades_v1_classes.txt --videos CharadesEgo_v1_480
      egoindex bench charades demo/store --generate --level segment
    """
    if generate == (annotations is not None or classes is not None):
        raise ConfigError("give --annotations CSV and --classes TXT, or --generate")
    if not generate and (annotations is None or classes is None):
        raise ConfigError("--annotations needs --classes (and the other way round)")
    from egoindex.bench.charades import DEFAULT_TEMPLATES, generate_demo_files, run_charades  # torch + lancedb
    from egoindex.demo.vocab import ACTIONS, OBJECTS

    s = open_store(store, device=device)
    od = out_dir or default_out_dir(store)
    if generate:
        annotations, classes = generate_demo_files(s, od, OBJECTS, ACTIONS, split=split)
        console.print(f"demo Charades files: {annotations}, {classes}")
    r = run_charades(s, annotations, classes, od, level=level, templates=template or DEFAULT_TEMPLATES,  # type: ignore[arg-type]
                     videos_dir=videos, num_frames=num_frames, short_side=short_side, batch_size=batch_size,
                     name=name, progress=not quiet)
    _show(r, ["mAP", "chance_mAP", "mean_prevalence", "mAP_official", "wAP", "n_videos", "n_classes_scored"])


def motion(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX (its model embeds the windows and the texts)."),
    questions: Path = typer.Option(..., "--questions", help="Motion question file (JSON); with --generate-from, "
                                   "written there first."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="The motion corpus folder (DIR/{video_uid}.mp4); "
                                          "default: the store's videos root."),
    generate_from: Optional[Path] = typer.Option(None, "--generate-from", help="ground_truth.json of "
                                                 "`egoindex demo-data DIR --motion`: write --questions from its "
                                                 "videos in the store's val split, then score them."),
    split: str = typer.Option("val", "--split", help="--generate-from: the store split whose videos give questions."),
    num_frames: Optional[int] = typer.Option(None, "--num-frames", min=2, help="Frames per question window "
                                             "(midpoints of equal intervals), in time order and reversed (default: "
                                             "the clip model's own, 4 for a frame model)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Report folder (default STORE/bench)."),
    name: str = typer.Option("motion", "--name", help="Report name."),
    short_side: int = typer.Option(256, "--short-side", help="Raw frames are scaled like the ingest: short side this."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Frames per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Motion direction: does the model see frame order? Accuracy with a 95 % interval (chance 50 %).

    Video side: the narration against the window's frames in time order vs the same frames
    reversed (a frame-mean clip vector is at exactly 50 %: the two candidates tie). Text side: the
    forward clip against the narration vs its opposite ("slides left" / "slides right").

    Examples:
      egoindex bench motion motion/store --questions motion_q.json --generate-from motion/videos/ground_truth.json --videos motion/videos
      egoindex bench motion motion/store --questions motion_q.json --videos motion/videos
    """
    from egoindex.bench.motion import generate_motion_file, run_motion  # torch + lancedb

    s = open_store(store, device=device)
    if generate_from is not None:
        generate_motion_file(s, generate_from, questions, split=split)
        console.print(f"motion questions: {questions}")
    r = run_motion(s, questions, out_dir or default_out_dir(store), videos_dir=videos, num_frames=num_frames,
                   short_side=short_side, batch_size=batch_size, name=name, progress=not quiet)
    _show(r, ["video_acc", "video_ci95_low", "video_ci95_high", "video_ties", "text_acc", "text_ci95_low",
              "text_ci95_high", "chance_acc", "n"])


def retrieval(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX."),
    k: list[int] = typer.Option([1, 5, 10], "--k", help="Recall cut-offs (repeatable)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Report folder (default STORE/bench)."),
    name: str = typer.Option("retrieval", "--name", help="Report name."),
) -> None:
    """Text->clip and clip->text R@K, median and mean rank on the store's val split.

    Texts are the val utterances, clips the val clips with text; a clip is a positive of an
    utterance when it overlaps it in time (same video) or overlaps an utterance with the same
    normalised text. Uses the stored vectors only. Each R@K is printed beside its chance level:
    what a random ranking scores with the same positives (also in the report as chance_R@K).

    Example: egoindex bench retrieval demo/store
    """
    from egoindex.bench.retrieval import retrieval_from_store  # lancedb

    r = retrieval_from_store(open_store(store, device="cpu"), out_dir or default_out_dir(store), ks=k, name=name)
    keys = [f"{d}_{m}" for d in ("t2c", "c2t") for m in [f"R@{x}" for x in k] + ["median_rank"]]
    _show(r, keys + ["n_texts", "n_clips"])


def alignment(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX."),
    split: str = typer.Option("val", "--split", help="Utterances and frames of this split: val | train | all."),
    seed: int = typer.Option(0, "--seed", help="Seed of the baseline windows and the bootstrap."),
    baselines: int = typer.Option(10, "--baselines", min=1, help="Baseline windows drawn per utterance (averaged)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=1, help="Bootstrap resamples (over utterances) of the "
                                  "95 % interval."),
    nearest: float = typer.Option(1.0, "--nearest", min=0.0, help="No frame inside an utterance: use the nearest "
                                  "frame within this many seconds, else skip it."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Report folder (default STORE/bench)."),
    name: str = typer.Option("alignment", "--name", help="Report name."),
) -> None:
    """Utterance-frame alignment (BabyView): an utterance's text vs the frames seen while it is said.

    Per utterance, the max and mean cosine of its stored text vector against the stored frame
    vectors inside its window, minus the same against a window of equal frame count from another
    video (across) and from the same video at a non-overlapping time (within); mean gap with a
    bootstrap 95 % interval, by length in words (and speaker / child / age when the store has them).

    Example: egoindex bench alignment demo/store --split val --seed 0 --baselines 10
    """
    from egoindex.bench.alignment import alignment_from_store  # lancedb

    r = alignment_from_store(open_store(store, device="cpu"), out_dir or default_out_dir(store), split=split,
                             seed=seed, baselines=baselines, n_resamples=bootstrap, nearest_s=nearest, name=name)
    _show(r, [f"gap_{v}_{b}{s}" for v in ("max", "mean") for b in ("across", "within")
              for s in ("", "_ci95_low", "_ci95_high")] + ["n_utterances", "n_skipped"])


def forced_choice(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX (its model embeds the category words and the images)."),
    labeled: Path = typer.Option(..., "--labeled", help="DIR/<category>/*.jpg (embedded by the store's image "
                                 "tower), or a .csv video_uid,time,category of store frames (their stored vectors; "
                                 "the frame nearest to time within --nearest s)."),
    ways: Optional[int] = typer.Option(None, "--ways", min=2, help="Candidates per trial (default 4; with "
                                       "--trials-file, the file's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the trials."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="Draw N targets (seeded); default one "
                                         "trial per labeled image."),
    template: Optional[list[str]] = typer.Option(None, "--template", help="Prompt template with {} for the "
                                                 "category (repeatable; default \"{}\", \"a {}\", "
                                                 "\"a photo of a {}\")."),
    trials_file: Optional[Path] = typer.Option(None, "--trials-file", help="Score these trials (a --trials-out "
                                               "of an earlier run) instead of generating them."),
    trials_out: Optional[Path] = typer.Option(None, "--trials-out", help="Where generated trials go (default "
                                              "OUT_DIR/NAME_trials.json)."),
    nearest: float = typer.Option(1.0, "--nearest", min=0.0, help="CSV form: a row's time may be this many "
                                  "seconds from the nearest stored frame, else the row is skipped."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Report folder (default STORE/bench)."),
    name: str = typer.Option("forced_choice", "--name", help="Report name."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """N-way forced choice (CVCL, Vong et al. 2024): does the category word pick its image? Chance 1/ways.

    Each trial: one target image and ways-1 foils, each from a different category than the target
    (and than each other); the model picks the candidate with the highest cosine to the word's
    text vector (normalised mean over the templates). Accuracy with a Wilson 95 % interval,
    overall and per category. Trials are written to a file; --trials-file scores another store
    on the very same trials.

    Examples:
      egoindex demo-labeled demo/labeled --from demo/videos --shards demo/shards
      egoindex bench forced-choice demo/store --labeled demo/labeled --ways 4 --seed 0
      egoindex bench forced-choice other/store --labeled demo/labeled --trials-file demo/store/bench/forced_choice_trials.json
    """
    from egoindex.bench.forced_choice import run_forced_choice  # torch + lancedb

    r = run_forced_choice(open_store(store, device=device), labeled, out_dir or default_out_dir(store), ways=ways,
                          seed=seed, n_trials=trials, templates=template, trials_file=trials_file,
                          trials_out=trials_out, nearest_s=nearest, name=name, progress=not quiet)
    _show(r, ["acc", "ci95_low", "ci95_high", "chance_acc", "mean_category_acc", "ties", "n", "n_categories",
              "n_items", "n_skipped"])


def compare(
    reports: list[Path] = typer.Argument(..., help="Report JSON files (NAME.json) to put side by side."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the Markdown table here."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed",
                                     help="Put reports of one benchmark side by side even when they were scored on "
                                          "different items (no paired section for them)."),
) -> None:
    """Several reports (checkpoints) side by side: one column per report, headed model @ sha256,
    with the run and the item set each was scored on. Reports of one benchmark must share their
    item set (trials file, questions, split and seed); then each run after the first is also
    compared with the first item by item (paired difference, bootstrap CI, McNemar p).

    Example: egoindex bench compare storeA/bench/egomcq_generated.json storeB/bench/egomcq_generated.json
    """
    print(compare_reports(reports, out, allow_mixed=allow_mixed), end="")


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group and its commands."""
    bench = typer.Typer(help="Benchmarks over a store: EgoMCQ, EPIC-style MIR, Charades-Ego mAP, motion direction, "
                        "retrieval R@K, utterance-frame alignment, n-way forced choice, compare.",
                        no_args_is_help=True)
    bench.command("mcq")(mcq)
    bench.command("mir")(mir)
    bench.command("charades")(charades)
    bench.command("motion")(motion)
    bench.command("retrieval")(retrieval)
    bench.command("alignment")(alignment)
    bench.command("forced-choice")(forced_choice)
    bench.command("compare")(compare)
    app.add_typer(bench, name="bench")
