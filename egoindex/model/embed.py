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

Clip vectors (:meth:`Embedder.encode_clips`, :meth:`Embedder.encode_windows`): a clip checkpoint
(:func:`egoindex.model.clip_video.load_embedding_model`) pools ``num_frames`` frame vectors with its
temporal head; a frame model takes their normalised mean. Every consumer that makes clip vectors
goes through these, so a store's clips and a raw video's clips come from the same encoder.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from egoindex.model.openclip import Loaded
from egoindex.model.pooling import PooledClips, normalised_mean, pool_clips, segment_indices
from egoindex.errors import ConfigError, ModelError

__all__ = ["Preprocessing", "Embedder", "crop_jpeg", "encode_clip_windows", "resolve_device"]


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
        #: the clip model (ClipVideoModel) of a clip checkpoint, else None: then clips are frame means
        self.video = loaded.video.to(self.device).eval() if loaded.video is not None else None
        #: how many frames the clip model pools (None for a frame model)
        self.num_frames: int | None = int(self.video.num_frames) if self.video is not None else None
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

    @property
    def clip_kind(self) -> str:
        """How this embedder makes clip vectors: ``temporal-head`` (a clip model) or ``frame-mean``."""
        return "temporal-head" if self.video is not None else "frame-mean"

    @torch.inference_mode()
    def encode_clips(self, frame_vecs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Clip vectors [B, D] (float32, unit length) from normalised frame vectors [B, T, D] in time order.

        A clip model pools them with its temporal head (``ClipVideoModel.pool``; T must be at most
        its ``num_frames``); a frame model takes the normalised mean of each row's T vectors
        (:func:`egoindex.model.pooling.normalised_mean`, the store's frame-mean rule, byte for byte).
        Why on frame vectors and not pixels: a build already holds every frame's vector, so its
        clips need no second decode, and the clip model's image tower is the one that made them."""
        x = np.asarray(frame_vecs, np.float32)
        if x.ndim != 3 or x.shape[1] < 1:
            raise ModelError(f"encode_clips wants frame vectors [B, T, D] with T >= 1, got shape {x.shape}")
        if self.video is None:
            out = np.zeros((x.shape[0], x.shape[2]), np.float32)
            for i in range(x.shape[0]):
                out[i] = normalised_mean(x[i])
            return out
        if x.shape[0] == 0:
            return np.zeros((0, x.shape[2]), np.float32)
        parts = []
        for i in range(0, x.shape[0], batch_size):
            f = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(self.device)
            with self._autocast():
                c = self.video.pool(f)
            parts.append(F.normalize(c.float(), dim=-1).cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)

    def encode_windows(self, vecs: np.ndarray, members: Sequence[np.ndarray]) -> np.ndarray:
        """One clip vector per window [M, D] from time-sorted frame vectors ``vecs`` [N, D] and each
        window's member frames (indices into ``vecs``, time order, none empty).

        The one rule that turns a window's frames into its clip vector, for the build's clips table,
        export feature windows and classification: a frame model takes the normalised mean of all
        members (:func:`egoindex.model.pooling.normalised_mean`); a clip model sees ``num_frames`` of
        them, the TSN segment middles (:func:`egoindex.model.pooling.segment_indices`, evaluation
        mode; fewer members repeat), pooled by its temporal head (:meth:`encode_clips`)."""
        dim = int(np.asarray(vecs).shape[1]) if np.asarray(vecs).ndim == 2 else self.dim
        if any(len(m) == 0 for m in members):
            raise ModelError("encode_windows: every window needs at least one frame")
        if self.video is None:
            return np.asarray([normalised_mean(vecs[np.asarray(m, np.int64)]) for m in members],
                              np.float32).reshape(len(members), dim)
        if not members:
            return np.zeros((0, dim), np.float32)
        t = int(self.num_frames or 1)
        picks = np.stack([np.asarray(m, np.int64)[segment_indices(len(m), t)] for m in members])
        return self.encode_clips(np.asarray(vecs, np.float32)[picks])

    def encode_clip_crops(self, crops: torch.Tensor) -> np.ndarray:
        """uint8 crops [B, T, S, S, 3] or [B, T, 3, S, S] -> clip vectors [B, D]: every frame through the
        image tower (:meth:`encode_crops`), then :meth:`encode_clips`."""
        if crops.ndim != 5:
            raise ValueError(f"expected a batch of clips [B, T, ...], got shape {tuple(crops.shape)}")
        b, t = crops.shape[:2]
        frames = self.encode_crops(crops.flatten(0, 1)).reshape(b, t, -1)
        return self.encode_clips(frames)

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


def encode_clip_windows(embedder: Embedder | None, times: np.ndarray, vecs: np.ndarray, start: float, end: float,
                        seconds: float, stride: float) -> PooledClips:
    """The clip windows of the span ``[start, end]`` of time-sorted frames and their vectors by
    ``embedder``'s clip encoder: the build's clips table and a raw video's clips (classification)
    both come from here.

    A frame model (or no embedder) gives :func:`egoindex.model.pooling.pool_clips` untouched (the
    frame-mean bytes of every earlier store); a clip model keeps ``pool_clips``' windows and
    members and pools each window's members with :meth:`Embedder.encode_windows`."""
    pooled = pool_clips(times, vecs, start, end, seconds, stride)
    if embedder is None or embedder.video is None or not pooled.windows:
        return pooled
    if np.any(np.diff(np.asarray(times, np.float64)) < 0):
        raise ModelError("a clip model's windows need the frames in time order")
    return replace(pooled, vectors=embedder.encode_windows(np.asarray(vecs, np.float32), pooled.members))
