"""Where a model's files are: a checkpoint path (or ``hf-hub:`` id) -> its weights file and config.

Users hold models in several forms (docs/formats.md, "Checkpoints"): a file (egoindex's own
checkpoint, open_clip_train's ``epoch_N.pt``, a bare state dict as ``.pt``/``.bin``/
``.safetensors``), or a Hugging Face hub folder as open_clip saves it (``open_clip_config.json``
beside ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``), given as the folder,
as a weights file inside it, or as a ``hf-hub:org/repo`` id already in the local Hugging Face
cache (egoindex never downloads).

This module only finds the files and fingerprints them; it imports neither torch nor open_clip,
so a store can check "is this the checkpoint I was built with" without loading a model. What the
files mean (which model, which weights, which preprocessing) is :mod:`egoindex.model.openclip`.

Why a folder's config is always found, even when the user names the weights file inside it:
open_clip loads a local weights file with its default preprocessing and ignores the config
beside it (open_clip issue #1068), so a model with another mean/std would embed silently wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from egoindex.core.fsutil import sha256_file
from egoindex.errors import ModelError

#: open_clip's names (open_clip.constants HF_CONFIG_NAME and the order of
#: open_clip.factory._find_checkpoint_in_dir): the config and the weights files of a hub folder.
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
    "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)
HF_HUB_PREFIX = "hf-hub:"


@dataclass(frozen=True)
class Source:
    """A checkpoint's files on disk.

    ``path`` is what a store records and re-loads (the file or folder the user named, made
    absolute; for a ``hf-hub:`` id, its snapshot folder in the cache); ``weights`` is the file
    holding the weights; ``config`` is the hub folder's ``open_clip_config.json`` (None for a file
    without one beside it).
    """

    given: str
    path: Path
    weights: Path
    config: Path | None = None

    @property
    def folder(self) -> Path | None:
        """The hub folder (None for a plain file)."""
        return self.config.parent if self.config is not None else None


def _folder_weights(folder: Path, given: str) -> Path:
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return folder / name
    present = sorted(p.name for p in folder.iterdir())[:8]
    raise ModelError(
        f"{given}: the folder {folder} has {CONFIG_FILE} but no weights file ({' or '.join(WEIGHTS_FILES[:3])}; "
        f"it holds: {', '.join(present) or 'nothing else'}). Copy the whole model folder (e.g. "
        f"`hf download ORG/REPO --local-dir DIR` on a machine with internet) and pass DIR."
    )


def hub_snapshot(repo: str, given: str, config_file: str = CONFIG_FILE) -> Path:
    """The cached snapshot folder of ``repo`` (offline: only what is already in the cache), found
    by its ``config_file`` (open_clip's ``open_clip_config.json``; ``config.json`` for a
    transformers model: :func:`local_weights`)."""
    from huggingface_hub import constants, try_to_load_from_cache  # heavy-ish; only for hf-hub: ids

    found = try_to_load_from_cache(repo, config_file)
    if not isinstance(found, str):
        raise ModelError(
            f"{given} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and egoindex never "
            f"downloads. On a machine with internet run `hf download {repo} --local-dir {repo.split('/')[-1]}`, "
            f"copy that folder here and pass its path instead of {given}."
        )
    return Path(found).parent


def locate(spec: str | Path) -> Source:
    """Find the files of a checkpoint given as a file, a hub folder or a cached ``hf-hub:`` id.

    Missing or incomplete inputs fail with a ModelError that says what was found and how to
    point at a local copy.
    """
    given = str(spec)
    if given.startswith(HF_HUB_PREFIX):
        repo = given[len(HF_HUB_PREFIX):].strip("/")
        if repo.count("/") != 1:
            raise ModelError(f"{given}: expected hf-hub:ORG/REPO")
        folder = hub_snapshot(repo, given)
        return Source(given, folder, _folder_weights(folder, given), folder / CONFIG_FILE)
    path = Path(spec).expanduser().resolve()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ModelError(
                f"{given} is a folder without {CONFIG_FILE}: not a Hugging Face model folder as open_clip saves "
                f"it. Pass a checkpoint file, or the folder holding {CONFIG_FILE} and its weights."
            )
        return Source(given, path, _folder_weights(path, given), path / CONFIG_FILE)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {given}")
    sibling = path.parent / CONFIG_FILE
    config = sibling if path.name in WEIGHTS_FILES and sibling.is_file() else None
    return Source(given, path, path, config)


def local_weights(spec: str | Path, config_file: str, example: str) -> Path:
    """The local file or folder that ``spec`` names, by the rule :func:`locate` applies to open_clip
    checkpoints: an existing path, or a ``hf-hub:ORG/REPO`` id already in the local Hugging Face
    cache (found by its ``config_file``). Anything else fails with a :class:`ModelError` that
    says how to point at a local copy; a bare ``ORG/REPO`` (a hub id, which needs the network)
    gets the ``hf download`` line. ``example`` names the kind of file for the message (e.g.
    "a torchvision .pth file")."""
    given = str(spec)
    if given.startswith(HF_HUB_PREFIX):
        repo = given[len(HF_HUB_PREFIX):].strip("/")
        if repo.count("/") != 1:
            raise ModelError(f"{given}: expected hf-hub:ORG/REPO")
        return hub_snapshot(repo, given, config_file)
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve()
    if given.count("/") == 1 and not given.startswith((".", "/", "~")) and not path.suffix:
        raise ModelError(
            f"{given} looks like a Hugging Face hub id, and egoindex never downloads (it works offline). On a machine "
            f"with internet run `hf download {given} --local-dir {given.split('/')[-1]}`, copy that folder here and "
            f"pass its path (e.g. --weights ./{given.split('/')[-1]}); it must hold {config_file} and the weights.")
    raise ModelError(f"weights not found: {given} (no such file or folder). Pass {example} on this machine.")


def checkpoint_sha256(spec: str | Path) -> str:
    """The fingerprint a store records for its checkpoint.

    A file's sha256; for a hub folder, the sha256 of its config's and weights' sha256s, because
    the config decides the preprocessing and an edited config must not pass for the same model.
    """
    src = locate(spec)
    if src.config is None:
        return sha256_file(src.weights)
    both = f"{CONFIG_FILE} {sha256_file(src.config)}\n{src.weights.name} {sha256_file(src.weights)}\n"
    return hashlib.sha256(both.encode()).hexdigest()
