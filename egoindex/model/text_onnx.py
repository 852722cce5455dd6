"""A model's text tower as ONNX, for text queries that import neither torch nor open_clip.

Why: a cold ``egoindex query STORE "text"`` spent ~17 s importing torch and open_clip and loading
the checkpoint to encode one sentence, against a 73 ms search. The text tower is exported once
(at the end of ``egoindex build``, or by ``egoindex encoders STORE``) into a folder, normally
``STORE/encoders/``::

    text.onnx                    the text tower: int64 token ids [N, context] -> float32 [N, D], L2-normalised
    bpe_simple_vocab_16e6.txt.gz the tokenizer's merges (a copy of open_clip's, so an open_clip upgrade cannot change ids)
    text.json                    the facts below; written last, so it marks a complete export

``text.json``::

    {"format": "egoindex-text-encoder", "version": 1, "model": open_clip name,
     "checkpoint_sha256": of the checkpoint exported (a reader ignores an encoder of another one),
     "embed_dim": D, "onnx": "text.onnx", "onnx_sha256": ..., "opset": 17,
     "tokenizer": {"kind": "clip-bpe", "vocab": "bpe_simple_vocab_16e6.txt.gz", "vocab_sha256": ...,
                   "context_length": 77, "clean": "lower", "additional_special_tokens": [],
                   "sot_token_id": 49406, "eot_token_id": 49407, "vocab_size": 49408},
     "max_abs_diff": the largest |ONNX - PyTorch| over the check texts' unit vectors (< 1e-4 or not written),
     "check_texts": how many texts that was, "torch_version": ..., "exported_at": ISO time}

Reading (:class:`OnnxTextEncoder`) needs only numpy, onnxruntime, regex and ftfy; exporting
(:func:`export_text_encoder`) needs torch, open_clip and the ``onnx`` package (torch's exporter
writes through it), imported inside it. Only models whose tokenizer is open_clip's
``SimpleTokenizer`` with plain truncation can be exported (:func:`unsupported_reason` says why
not); their stores keep the torch path.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from egoindex.core.fsutil import read_json, sha256_file, tmp_name, write_json
from egoindex.errors import ModelError
from egoindex.model.tokenizer import CLEANERS, VOCAB_FILE, BpeTokenizer

if TYPE_CHECKING:
    from egoindex.model.openclip import Loaded

__all__ = ["FACTS_FILE", "MAX_ABS_DIFF", "OnnxTextEncoder", "TextEncoderFacts", "export_text_encoder",
           "read_facts", "unsupported_reason"]

FORMAT = "egoindex-text-encoder"
VERSION = 1
FACTS_FILE = "text.json"
ONNX_FILE = "text.onnx"
OPSET = 17
#: The export is refused when ONNX and PyTorch unit vectors differ by more than this anywhere.
MAX_ABS_DIFF = 1e-4
#: Texts the export is checked on (token ids and vectors): short, long (truncated), unicode, empty.
CHECK_TEXTS = (
    "", "a", "the yellow star spins", "The baby grabs the RED ball!", "a person is cutting a tomato on a board",
    "Héllo wörld, ça va? naïve café — “quotes” &amp; it's 3.14 o'clock", "日本語のテキスト 😀 🎉 emoji", "x " * 120,
    "  leading and\ttrailing   whitespace\n", "#C opens the fridge door and takes out the milk",
)


@dataclass(frozen=True)
class TextEncoderFacts:
    """The contents of ``text.json`` (see the module docstring), with the folder it was read from."""

    folder: Path
    model: str
    checkpoint_sha256: str
    embed_dim: int
    onnx: str
    tokenizer: dict[str, Any]
    max_abs_diff: float
    doc: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.folder / self.onnx

    @property
    def vocab_path(self) -> Path:
        return self.folder / str(self.tokenizer["vocab"])


def read_facts(folder: str | Path) -> TextEncoderFacts | None:
    """The facts of the encoder in ``folder``; None when there is none (no ``text.json``: an older
    store, a model that cannot be exported, or an export that was killed before its end)."""
    folder = Path(folder)
    path = folder / FACTS_FILE
    if not path.is_file():
        return None
    try:
        doc = read_json(path)
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ModelError(f"{path} is not a version-{VERSION} {FORMAT} file; rerun `egoindex encoders STORE --force`")
        return TextEncoderFacts(folder, str(doc["model"]), str(doc["checkpoint_sha256"]), int(doc["embed_dim"]),
                                str(doc["onnx"]), dict(doc["tokenizer"]), float(doc["max_abs_diff"]), doc)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        if isinstance(e, ModelError):
            raise
        raise ModelError(f"cannot read the text encoder facts {path} ({e}); rerun `egoindex encoders STORE --force`") from e


def tokenizer_of(facts: dict[str, Any], vocab: Path) -> BpeTokenizer:
    """The pure tokenizer the facts describe, checked to have the recorded special ids."""
    tok = BpeTokenizer(vocab, context_length=int(facts["context_length"]), clean=str(facts["clean"]),
                       additional_special_tokens=list(facts.get("additional_special_tokens") or ()))
    got = (tok.sot_token_id, tok.eot_token_id, tok.vocab_size)
    want = (facts["sot_token_id"], facts["eot_token_id"], facts["vocab_size"])
    if got != tuple(want):
        raise ModelError(f"the BPE vocabulary {vocab} gives (sot, eot, size) {got}, the encoder recorded {tuple(want)}")
    return tok


class OnnxTextEncoder:
    """Texts -> float32 L2-normalised vectors ``[N, D]`` with the exported tower (no torch)."""

    def __init__(self, facts: TextEncoderFacts, threads: int | None = None) -> None:
        import onnxruntime as ort  # ~50 ms; only text queries need it

        self.facts = facts
        self.tokenizer = tokenizer_of(facts.tokenizer, facts.vocab_path)
        opts = ort.SessionOptions()
        # a query is one short sequence: more threads only cost start-up and contention
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(facts.onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/NoSuchFile classes
            raise ModelError(f"cannot load the ONNX text encoder {facts.onnx_path}: {e}; "
                             "rerun `egoindex encoders STORE --force`") from e
        self.input = self.session.get_inputs()[0].name
        self.dim = int(facts.embed_dim)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        if len(tokens) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.session.run(None, {self.input: tokens.astype(np.int64, copy=False)})[0], np.float32)

    def encode_texts(self, texts: list[str] | tuple[str, ...], batch_size: int = 512) -> np.ndarray:
        out = [self.encode_tokens(self.tokenizer(list(texts[i:i + batch_size])))
               for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def unsupported_reason(tokenizer: Any) -> str | None:
    """Why a model's tokenizer cannot be replaced by :class:`BpeTokenizer` (None when it can)."""
    from open_clip.tokenizer import SimpleTokenizer

    if not isinstance(tokenizer, SimpleTokenizer):
        return f"its tokenizer is {type(tokenizer).__name__}, not open_clip's SimpleTokenizer"
    if getattr(tokenizer, "reduction_fn", None) is not None:
        return "its tokenizer reduces long texts by random masking, not by truncation"
    if _clean_name(tokenizer) not in CLEANERS:
        return f"its tokenizer cleans text with {getattr(tokenizer.clean_fn, '__name__', tokenizer.clean_fn)!r}"
    return None


def _clean_name(tokenizer: Any) -> str:
    name = str(getattr(tokenizer.clean_fn, "__name__", ""))
    return "canonicalize" if name == "_clean_canonicalize" else name.removeprefix("_clean_")


def export_text_encoder(loaded: Loaded, folder: str | Path, checkpoint_sha256: str) -> TextEncoderFacts:
    """Export ``loaded``'s text tower and tokenizer facts into ``folder``, checked against PyTorch.

    Token ids of :data:`CHECK_TEXTS` must equal open_clip's and the ONNX unit vectors must be
    within :data:`MAX_ABS_DIFF` of the PyTorch ones, or nothing is published (ModelError).
    ``text.json`` is replaced last, so a reader sees the old complete encoder or the new one.
    """
    import torch
    import torch.nn.functional as F

    reason = unsupported_reason(loaded.tokenizer)
    if reason:
        raise ModelError(f"cannot export the text encoder of {loaded.name}: {reason}; text queries use PyTorch")
    try:
        import onnx  # noqa: F401  torch's exporter serialises through it
    except ImportError:
        raise ModelError("exporting a text encoder needs the `onnx` package (pip install onnx); "
                         "text queries use PyTorch until then") from None
    import onnxruntime as ort
    from open_clip.tokenizer import default_bpe

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / VOCAB_FILE
    src = Path(default_bpe())
    if not vocab.is_file() or sha256_file(vocab) != sha256_file(src):
        tmp = tmp_name(vocab)
        shutil.copyfile(src, tmp)
        os.replace(tmp, vocab)
    ref_tok = loaded.tokenizer
    tok_facts = {"kind": "clip-bpe", "vocab": VOCAB_FILE, "vocab_sha256": sha256_file(vocab),
                 "context_length": int(ref_tok.context_length), "clean": _clean_name(ref_tok),
                 "additional_special_tokens": [t for t, i in sorted(ref_tok.encoder.items(), key=lambda kv: kv[1])
                                               if i > ref_tok.eot_token_id],
                 "sot_token_id": int(ref_tok.sot_token_id), "eot_token_id": int(ref_tok.eot_token_id),
                 "vocab_size": int(ref_tok.vocab_size)}
    mine = tokenizer_of(tok_facts, vocab)
    ref_ids = ref_tok(list(CHECK_TEXTS)).numpy()
    if not np.array_equal(mine(list(CHECK_TEXTS)), ref_ids):
        raise ModelError(f"the pure tokenizer disagrees with {loaded.name}'s open_clip tokenizer; text queries use PyTorch")

    model = loaded.model

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    tower = TextTower().eval()
    device = next(model.parameters()).device
    was_training = model.training
    onnx_path = folder / ONNX_FILE
    tmp = tmp_name(onnx_path)
    model.cpu().eval()
    try:
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # the TorchScript exporter's deprecation and tracer notices: the check below is what counts
                warnings.simplefilter("ignore")
                want = tower(torch.from_numpy(ref_ids)).numpy()
                torch.onnx.export(tower, (torch.from_numpy(ref_ids[:2]),), str(tmp), input_names=["tokens"],
                                  output_names=["embeddings"], opset_version=OPSET, dynamo=False,
                                  dynamic_axes={"tokens": {0: "batch"}, "embeddings": {0: "batch"}})
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = session.run(None, {"tokens": ref_ids})[0]
        except RuntimeError as e:  # a tower the tracer or onnxruntime cannot take (their errors are RuntimeErrors)
            raise ModelError(f"cannot export the text encoder of {loaded.name}: {e}; text queries use PyTorch") from e
        diff = float(np.abs(got - want).max())
        if not diff < MAX_ABS_DIFF:
            raise ModelError(f"the ONNX text encoder of {loaded.name} differs from PyTorch by {diff:.2e} "
                             f"(> {MAX_ABS_DIFF:g}); text queries use PyTorch")
        # the old facts go first: a kill before the new ones are written leaves no encoder, never a mismatched one
        (folder / FACTS_FILE).unlink(missing_ok=True)
        os.replace(tmp, onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
        model.to(device).train(was_training)
    doc = {"format": FORMAT, "version": VERSION, "model": loaded.name, "checkpoint_sha256": checkpoint_sha256,
           "embed_dim": int(want.shape[1]), "onnx": ONNX_FILE, "onnx_sha256": sha256_file(onnx_path), "opset": OPSET,
           "tokenizer": tok_facts, "max_abs_diff": diff, "check_texts": len(CHECK_TEXTS),
           "torch_version": torch.__version__,
           "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(folder / FACTS_FILE, doc)
    facts = read_facts(folder)
    assert facts is not None
    return facts
