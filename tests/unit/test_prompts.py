"""egoindex.model.prompts: the one class-name -> class-vector rule, shared by ``classify`` and
``bench charades``.

The reference is open_clip's own ``build_zero_shot_classifier`` on a real (randomly initialised,
seeded) registered model; the arithmetic cases use an encoder with chosen outputs, so the
expected vectors can be written by hand. Torch is imported inside the tests, not at collection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from egoindex.errors import BenchError, ClassifyError, ModelError
from egoindex.model.prompts import CLIP_TEMPLATES, NAME_ONLY_TEMPLATES, check_templates, class_embeddings, prompt_texts


class Chosen:
    """A text encoder whose output is chosen per text (not unit length, to see the normalisation)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls = 0

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.array([self.table[t] for t in texts], np.float32)


def test_mean_of_normalised_templates_renormalised() -> None:
    enc = Chosen({"a person x": [3.0, 0.0], "x": [0.0, 1.0], "a person y": [0.0, 5.0], "y": [0.0, 0.5]})
    w = class_embeddings(enc, ["x", "y"], ["a person {}", "{}"])
    # x: ([1, 0] + [0, 1]) / 2, renormalised; y: both templates point the same way
    assert w.dtype == np.float32 and w.shape == (2, 2)
    assert np.allclose(w, [[2 ** -0.5, 2 ** -0.5], [0.0, 1.0]], atol=1e-7)
    assert enc.calls == 1  # one batch for every class and template
    # one template: the prompt's normalised embedding
    assert np.allclose(class_embeddings(enc, ["x"], "a person {}"), [[1.0, 0.0]])


def test_zero_embedding_stays_zero_and_opposite_templates_cancel() -> None:
    enc = Chosen({"p x": [0.0, 0.0], "x": [0.0, 0.0], "p y": [1.0, 0.0], "y": [-2.0, 0.0]})
    w = class_embeddings(enc, ["x", "y"], ["p {}", "{}"])
    assert np.isfinite(w).all() and not w.any()


def test_texts_are_class_major_and_templates_checked() -> None:
    assert prompt_texts(["cup", "ball"], ["a {}", "{}!"]) == ["a cup", "cup!", "a ball", "ball!"]
    assert prompt_texts(["x"], ["{a} {}"]) == ["{a} x"]  # replace, not str.format: other braces are kept
    assert check_templates("a {}") == ["a {}"]
    for bad, match in (([], "no prompt template"), (["a photo"], "a photo"), (["{}", 3], "3")):
        with pytest.raises(ModelError, match=match):
            check_templates(bad)  # type: ignore[arg-type]
    enc = Chosen({"x": [1.0, 0.0]})
    with pytest.raises(ModelError, match="no class names"):
        class_embeddings(enc, [], ["{}"])

    class Short:
        def encode_texts(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts) - 1, 2), np.float32)

    with pytest.raises(ModelError, match="expected"):
        class_embeddings(Short(), ["x", "y"], ["{}"])
    assert "{}" in NAME_ONLY_TEMPLATES and CLIP_TEMPLATES[-1] == "{}"


@pytest.fixture(scope="module")
def embedder():
    import torch

    from egoindex.model.embed import Embedder
    from egoindex.model.openclip import Loaded, create
    from tests.support import torch_threads

    torch.manual_seed(0)
    with torch_threads(1):
        c = create("ego-tiny-rn")
        yield Embedder(Loaded(c.model, c.preprocess_val, c.tokenizer, c.name, {}), device="cpu")


NAMES = ["the ball rolls", "the baby grabs the cup", "the star spins", "a door"]


@pytest.mark.parametrize("templates", [CLIP_TEMPLATES, NAME_ONLY_TEMPLATES, ("a person {}", "{}")])
def test_equals_open_clip_zero_shot_classifier(embedder, templates: tuple[str, ...]) -> None:
    """open_clip's reference (``encode_text(normalize=True)``, mean over templates, renormalise)
    on the same real model gives the same vectors."""
    import torch
    from open_clip import build_zero_shot_classifier

    from tests.support import torch_threads

    with torch_threads(1):
        ref = build_zero_shot_classifier(embedder.model, embedder.loaded.tokenizer, NAMES, list(templates),
                                         num_classes_per_batch=None, device="cpu").T.numpy()
        with torch.inference_mode():
            w = class_embeddings(embedder, NAMES, templates)
    assert w.shape == ref.shape == (len(NAMES), embedder.dim)
    np.testing.assert_allclose(w, ref, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-6)


def test_classify_and_charades_use_the_one_rule(embedder, tmp_path: Path) -> None:
    """``classify``'s text classifier is exactly the shared rule (and cached); ``bench charades``
    refuses a bad template with its option's name before it reads any file or store."""
    from egoindex.bench.charades import DEFAULT_TEMPLATES, run_charades
    from egoindex.classify.zero_shot import DEFAULT_TEMPLATES as ZS_TEMPLATES
    from egoindex.classify.zero_shot import text_classifier

    assert ZS_TEMPLATES == CLIP_TEMPLATES and DEFAULT_TEMPLATES == NAME_ONLY_TEMPLATES
    w = text_classifier(embedder, NAMES, CLIP_TEMPLATES)
    assert np.array_equal(w, class_embeddings(embedder, NAMES, CLIP_TEMPLATES)) and not w.flags.writeable
    assert text_classifier(embedder, NAMES, CLIP_TEMPLATES) is w
    with pytest.raises(ClassifyError, match="template"):
        text_classifier(embedder, NAMES, ["a photo"])
    with pytest.raises(BenchError, match="--template"):
        run_charades(None, tmp_path / "missing.csv", tmp_path / "missing.txt", tmp_path, templates=["no slot"])
