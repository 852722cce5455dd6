"""``STORE/encoders/``: the query encoders exported from a store's checkpoint (today the text tower).

Why a store keeps them: a text query must be encoded with the store's own model, and loading that
model through torch and open_clip dominated a cold ``egoindex query`` (seconds, for a search of
milliseconds). ``egoindex build`` exports the text tower to ONNX at its end
(:func:`export_text_encoder_quietly`), ``egoindex encoders STORE`` does it for a store built
before (:func:`write_text_encoder`); the files and their format belong to
:mod:`egoindex.model.text_onnx`. :class:`egoindex.store.Store` uses the encoder when its recorded
checkpoint sha256 is the store's, else (no encoder, a model that cannot be exported,
``EGOINDEX_TEXT_ENCODER=torch``) the PyTorch path as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from egoindex.errors import ModelError
from egoindex.model.text_onnx import TextEncoderFacts, export_text_encoder, read_facts
from egoindex.store.layout import StoreLayout

if TYPE_CHECKING:
    from egoindex.model.openclip import Loaded

__all__ = ["TEXT_ENCODER_ENV", "current_text_encoder", "export_text_encoder_quietly", "write_text_encoder"]

#: ``auto`` (default: the ONNX encoder when current, else PyTorch), ``onnx`` (required) or ``torch`` (forced).
TEXT_ENCODER_ENV = "EGOINDEX_TEXT_ENCODER"

log = logging.getLogger(__name__)


def current_text_encoder(root: str | Path | StoreLayout, checkpoint_sha256: str) -> TextEncoderFacts | None:
    """The store's exported text encoder if it was exported from ``checkpoint_sha256`` (else None);
    ``root`` a store folder or a layout (an s3:// store's snapshot keeps its encoders elsewhere)."""
    facts = read_facts((root if isinstance(root, StoreLayout) else StoreLayout(root)).encoders)
    return facts if facts is not None and facts.checkpoint_sha256 == checkpoint_sha256 else None


def write_text_encoder(root: str | Path, loaded: Loaded, checkpoint_sha256: str, *,
                       force: bool = False) -> TextEncoderFacts:
    """Export ``loaded``'s text tower into ``STORE/encoders`` (a no-op when a current one is there,
    unless ``force``). ``loaded`` must be the store's model (the caller checked its sha256). A model
    that cannot be exported, or an export that fails its check, raises ModelError."""
    have = current_text_encoder(root, checkpoint_sha256)
    if have is not None and have.model == loaded.name and not force:
        return have
    return export_text_encoder(loaded, StoreLayout(root).encoders, checkpoint_sha256)


def export_text_encoder_quietly(root: str | Path, loaded: Loaded, checkpoint_sha256: str) -> TextEncoderFacts | None:
    """:func:`write_text_encoder` for the end of a build: a model that cannot be exported is not an
    error of the build (its text queries keep the PyTorch path), so the reason is logged, not raised."""
    try:
        return write_text_encoder(root, loaded, checkpoint_sha256)
    except ModelError as e:
        log.warning("no ONNX text encoder for %s: %s", root, e)
        return None
