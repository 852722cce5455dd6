"""The torch-free text path: the BPE tokenizer port and the ONNX text tower (egoindex/model/text_onnx.py).

Real components: open_clip's own tokenizer and a real ``ego-tiny-rn`` text tower (random weights:
equality does not need training), exported by torch's ONNX exporter and run by onnxruntime.
Heavy modules are imported inside the tests (unit tests keep collection light).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from egoindex.errors import ModelError
from egoindex.model.text_onnx import FACTS_FILE, MAX_ABS_DIFF, read_facts
from egoindex.model.tokenizer import VOCAB_FILE, BpeTokenizer

STRINGS = [
    "", " ", "a", "A", "the yellow star spins", "The Baby grabs the RED ball!!!", "#C C opens the fridge",
    "it's, they're, we've, I'm, you'll, he'd", "naïve café déjà vu — “curly quotes” ‘single’",
    "Ærøskøbing straße ﬁnance œuvre", "日本語のテキストです", "中文 测试 한국어 텍스트", "русский текст, ελληνικά",
    "emoji 😀🎉👍🏽 flags 🇫🇷", "&amp; &lt;b&gt; html &amp;amp; twice", "tabs\tand\nnewlines\r\n  spaces   ",
    "3.14159 and 2,718 and 1e-9", "x" * 300, "word " * 200, "a-b_c/d\\e|f", "\u0000\u200b zero width",
    "mojibake: Ã©tÃ©", "UPPER lower MiXeD", "🙂" * 50, "ab" * 80 + " the end",
]


@pytest.fixture(scope="module")
def vocab() -> Path:
    from open_clip.tokenizer import default_bpe

    return Path(default_bpe())


@pytest.mark.parametrize("context", [77, 32, 5])
def test_tokenizer_ids_equal_open_clip(vocab: Path, context: int) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer(context_length=context)
    mine = BpeTokenizer(vocab, context_length=context)
    got, want = mine(STRINGS), ref(STRINGS).numpy()
    assert got.dtype == np.int64 and got.shape == (len(STRINGS), context)
    for s, g, w in zip(STRINGS, got, want):
        assert g.tolist() == w.tolist(), s
    # truncation keeps eot last; the empty text is sot, eot, zeros
    assert got[STRINGS.index("word " * 200)][-1] == mine.eot_token_id
    assert got[0][:3].tolist() == [mine.sot_token_id, mine.eot_token_id, 0]


@pytest.mark.parametrize("clean", ["whitespace", "canonicalize"])
def test_tokenizer_cleaners_equal_open_clip(vocab: Path, clean: str) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer(context_length=77, clean=clean)
    assert BpeTokenizer(vocab, context_length=77, clean=clean)(STRINGS).tolist() == ref(STRINGS).tolist()


def test_tokenizer_refuses_bad_settings(vocab: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cleaner"):
        BpeTokenizer(vocab, context_length=77, clean="stem")
    with pytest.raises(ModelError, match="context"):
        BpeTokenizer(vocab, context_length=1)
    bad = tmp_path / VOCAB_FILE
    bad.write_bytes(b"not gzip")
    with pytest.raises(ModelError, match="BPE vocabulary"):
        BpeTokenizer(bad, context_length=77)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """A real ego-tiny-rn model (random weights) and its text tower exported to a folder."""
    import torch

    from egoindex.model.openclip import Loaded, create
    from egoindex.model.text_onnx import export_text_encoder

    torch.manual_seed(0)
    c = create("ego-tiny-rn")
    loaded = Loaded(c.model.eval(), c.preprocess_val, c.tokenizer, c.name, {})
    folder = tmp_path_factory.mktemp("encoders")
    facts = export_text_encoder(loaded, folder, "f" * 64)
    return loaded, folder, facts


def torch_vectors(loaded, texts: list[str]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        return F.normalize(loaded.model.encode_text(loaded.tokenizer(texts)).float(), dim=-1).numpy()


def test_export_writes_checked_facts(exported) -> None:
    loaded, folder, facts = exported
    assert {p.name for p in folder.iterdir()} == {"text.onnx", FACTS_FILE, VOCAB_FILE}
    doc = json.loads((folder / FACTS_FILE).read_text())
    assert doc["model"] == "ego-tiny-rn" and doc["checkpoint_sha256"] == "f" * 64 and doc["embed_dim"] == 128
    tok = doc["tokenizer"]
    assert (tok["context_length"], tok["clean"], tok["sot_token_id"], tok["eot_token_id"]) == (32, "lower", 49406, 49407)
    assert 0 <= doc["max_abs_diff"] < MAX_ABS_DIFF
    assert read_facts(folder) == facts


def test_onnx_vectors_equal_pytorch(exported) -> None:
    from egoindex.model.text_onnx import OnnxTextEncoder

    loaded, _, facts = exported
    enc = OnnxTextEncoder(facts)
    got, want = enc.encode_texts(STRINGS), torch_vectors(loaded, STRINGS)
    assert got.shape == (len(STRINGS), 128) and got.dtype == np.float32
    assert np.abs(got - want).max() < MAX_ABS_DIFF
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert enc.encode_texts([]).shape == (0, 128)
    # batches split as one call would
    assert np.abs(enc.encode_texts(STRINGS, batch_size=4) - got).max() < 1e-6


def test_text_path_imports_no_torch(exported) -> None:
    """The reading side in a fresh process: vectors equal to PyTorch's, torch never imported."""
    loaded, folder, _ = exported
    code = (
        "import sys, json\n"
        "from egoindex.model.text_onnx import OnnxTextEncoder, read_facts\n"
        f"v = OnnxTextEncoder(read_facts({str(folder)!r})).encode_texts(json.loads(sys.stdin.read()))\n"
        "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, 'torch imported'\n"
        "print(json.dumps(v.tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(STRINGS[:8]), capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert np.abs(np.array(json.loads(out.stdout)) - torch_vectors(loaded, STRINGS[:8])).max() < MAX_ABS_DIFF


def test_missing_or_foreign_facts(tmp_path: Path, exported) -> None:
    assert read_facts(tmp_path) is None  # an older store: the torch path, silently
    (tmp_path / FACTS_FILE).write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(ModelError, match="egoindex encoders"):
        read_facts(tmp_path)
    (tmp_path / FACTS_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        read_facts(tmp_path)
    _, folder, facts = exported
    doc = dict(facts.doc, tokenizer=dict(facts.tokenizer, eot_token_id=7))
    (tmp_path / FACTS_FILE).write_text(json.dumps(doc))
    (tmp_path / VOCAB_FILE).write_bytes((folder / VOCAB_FILE).read_bytes())
    from egoindex.model.text_onnx import OnnxTextEncoder

    with pytest.raises(ModelError, match="recorded"):
        OnnxTextEncoder(read_facts(tmp_path))


def test_unsupported_tokenizer_is_refused(exported, tmp_path: Path) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    from egoindex.model.openclip import Loaded
    from egoindex.model.text_onnx import export_text_encoder, unsupported_reason

    loaded, _, _ = exported
    assert unsupported_reason(loaded.tokenizer) is None
    masked = SimpleTokenizer(context_length=32, reduction_mask="simple")
    assert "random masking" in unsupported_reason(masked)
    assert "not open_clip's SimpleTokenizer" in unsupported_reason(lambda texts: None)
    with pytest.raises(ModelError, match="cannot export"):
        export_text_encoder(Loaded(loaded.model, None, masked, loaded.name, {}), tmp_path, "0" * 64)
    assert not (tmp_path / FACTS_FILE).exists()
