"""Turn JPEG frames and texts into L2-normalised embeddings with a loaded open_clip model.

Why not open_clip's own PIL transform per sample: that is the clip-retrieval data path (decode a
full-size JPEG, resize, crop, ``ToTensor``, normalise, one image at a time in Python) and on a GPU
it, not the model, sets the speed. egoindex splits preprocessing in two:

* **geometry on uint8** (decode, resize the short side to the model's input size with bicubic
  antialiasing, centre crop): on CPU loader workers with PIL, whose JPEG ``draft`` mode decodes
  straight to a 1/2, 1/4 or 1/8 scale when the frame is much larger than the model input (most of
  the decode cost disappears), or, on a GPU, ``torchvision.io.decode_jpeg(device='cuda')`` on
  whole batches plus ``interpolate(antialias=True)``;
* **normalisation on the device** in one batched op, under bf16 autocast on CUDA.

Workers ship uint8 crops (``3*S*S`` bytes) instead of float tensors (4x more), which keeps the
inter-process traffic small. The result matches open_clip's transform up to resampling rounding
(cosine > 0.99 between the two embeddings of a frame; ``tests/test_store.py`` checks it).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from egoindex.model.openclip import Loaded
from egoindex.errors import ConfigError

__all__ = ["Preprocessing", "Embedder", "crop_jpeg", "resolve_device"]


@dataclass(frozen=True)
class Preprocessing:
    """The image transform a model expects (recorded in the store: queries must use the same)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    @classmethod
    def of(cls, model: torch.nn.Module) -> Preprocessing:
        cfg = getattr(getattr(model, "visual", None), "preprocess_cfg", None) or {}
        size = cfg.get("size") or getattr(model.visual, "image_size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else size
        return cls(int(size), tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),  # type: ignore[arg-type]
                   tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),  # type: ignore[arg-type]
                   str(cfg.get("interpolation", "bicubic")), str(cfg.get("resize_mode", "shortest")))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


def _resample(name: str) -> Image.Resampling:
    return {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}.get(name, Image.Resampling.BICUBIC)


def crop_pil(img: Image.Image, pp: Preprocessing) -> np.ndarray:
    """Resize the short side to ``pp.image_size`` and centre-crop: uint8 [S, S, 3]."""
    img = img.convert("RGB")
    s = pp.image_size
    w, h = img.size
    scale = s / min(w, h)
    nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), _resample(pp.interpolation))
    left, top = int(round((nw - s) / 2.0)), int(round((nh - s) / 2.0))
    return np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.uint8)


def crop_jpeg(data: bytes, pp: Preprocessing, draft: bool = True) -> np.ndarray:
    """Decode a JPEG straight to the model's input crop (uint8 [S, S, 3]).

    ``draft`` lets libjpeg decode at a reduced scale when the result stays at least twice the
    target short side (so the final bicubic step still antialiases); off = exact open_clip geometry.
    """
    img = Image.open(io.BytesIO(data))
    if draft and img.format == "JPEG":
        w, h = img.size
        k = min(w, h) / (2 * pp.image_size)
        if k >= 2:
            img.draft("RGB", (int(w / k) + 1, int(h / k) + 1))
    return crop_pil(img, pp)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available; use --device cpu")
    return torch.device(device)


class Embedder:
    """Encode images and texts with a loaded checkpoint; outputs are float32, L2-normalised, on CPU."""

    def __init__(self, loaded: Loaded, device: str | torch.device = "auto", precision: str = "auto") -> None:
        self.loaded = loaded
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = loaded.model.to(self.device).eval()
        self.pp = Preprocessing.of(self.model)
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16, not {precision!r}")
        self.precision = precision
        self._mean = torch.tensor(self.pp.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.pp.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self.dim = int(self.encode_texts(["a"]).shape[1])

    def _autocast(self) -> torch.autocast:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    @torch.inference_mode()
    def encode_crops(self, crops: torch.Tensor) -> np.ndarray:
        """uint8 crops [B, S, S, 3] (from :func:`crop_jpeg`) or [B, 3, S, S] -> embeddings [B, D]."""
        if crops.ndim != 4:
            raise ValueError(f"expected a batch of images, got shape {tuple(crops.shape)}")
        x = crops.to(self.device, non_blocking=True)
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        x = (x.float() - self._mean) / self._std
        with self._autocast():
            f = self.model.encode_image(x.contiguous(memory_format=torch.channels_last))
        return F.normalize(f.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def crops_from_jpegs_on_device(self, jpegs: Sequence[bytes]) -> torch.Tensor:
        """Batch-decode JPEGs with torchvision on ``self.device`` (nvJPEG on CUDA) and crop there.

        The GPU data path: workers only read bytes, the GPU decodes and resizes. On CPU this runs
        the same code (tests use it), with libjpeg-turbo instead of nvJPEG.
        """
        from torchvision.io import ImageReadMode, decode_jpeg

        datas = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its image codecs in favour of torchcodec
            imgs = decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device)
        s = self.pp.image_size
        out = torch.empty((len(imgs), 3, s, s), dtype=torch.uint8, device=self.device)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(imgs):  # frames of one video share a size: resize each size in one call
            groups.setdefault((im.shape[1], im.shape[2]), []).append(i)
        for (h, w), idx in groups.items():
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            x = torch.stack([imgs[i] for i in idx]).float()
            if (nh, nw) != (h, w):
                x = F.interpolate(x, size=(nh, nw), mode=self.pp.interpolation if self.pp.interpolation in ("bicubic", "bilinear") else "bicubic",
                                  antialias=True, align_corners=False)
            top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
            out[idx] = x[:, :, top:top + s, left:left + s].round().clamp(0, 255).to(torch.uint8)
        return out

    def encode_pil(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Query images (uploads, ``--image``): same geometry as the store's frames."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_crops(torch.from_numpy(np.stack([crop_pil(im, self.pp) for im in images])))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            tok = self.loaded.tokenizer(list(texts[i:i + batch_size])).to(self.device)
            with self._autocast():
                f = self.model.encode_text(tok)
            out.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        if not out:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)
