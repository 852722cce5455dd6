"""CLIP's byte-level BPE tokenizer without torch: what a text query needs before the ONNX text tower.

Why a port: ``open_clip.tokenizer`` imports torch at module top (its ``__call__`` returns a
``torch.LongTensor``), and importing torch + open_clip costs most of a cold ``egoindex query``
(seconds) although tokenizing a sentence takes microseconds. This module is a line-by-line port of
open_clip's ``SimpleTokenizer`` (OpenAI CLIP's, MIT licence) on ``regex``, ``ftfy`` and numpy,
reading the same ``bpe_simple_vocab_16e6.txt.gz`` merges file; it returns int64 numpy arrays with
the same ids (``tests/unit/test_text_onnx.py`` compares it to ``open_clip.get_tokenizer`` on
many strings, unicode, over-long and empty ones included).

Only the deterministic options are ported: the ``lower``, ``whitespace`` and ``canonicalize``
cleaners and plain truncation. Random-mask "reduction" tokenizers (a training augmentation),
SigLIP's and Hugging Face tokenizers are not: a store whose model uses one keeps the torch path.
"""

from __future__ import annotations

import gzip
import html
import string
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import regex as re

from egoindex.errors import ModelError

__all__ = ["CLEANERS", "BpeTokenizer", "VOCAB_FILE"]

#: The merges file open_clip ships (and egoindex copies next to a store's ONNX text encoder).
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
#: How many merges CLIP's vocabulary keeps (49152 - 256 byte tokens - 2 specials).
N_MERGES = 49152 - 256 - 2


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _basic_clean(text: str) -> str:
    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def _whitespace_clean(text: str) -> str:
    return " ".join(text.split()).strip()


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _canonicalize(text: str) -> str:
    text = text.replace("_", " ").translate(_PUNCTUATION).lower()
    return " ".join(text.split()).strip()


#: open_clip's ``clean=`` options, by the name recorded in the encoder's facts.
CLEANERS: dict[str, Callable[[str], str]] = {
    "lower": lambda x: _whitespace_clean(_basic_clean(x)).lower(),
    "whitespace": lambda x: _whitespace_clean(_basic_clean(x)),
    "canonicalize": lambda x: _canonicalize(_basic_clean(x)),
}


class BpeTokenizer:
    """Texts -> int64 token ids ``[N, context_length]``: ``sot, BPE ids..., eot``, zero-padded, and
    truncated to the context with ``eot`` kept as the last id (exactly open_clip's rule)."""

    def __init__(self, bpe_path: str | Path, *, context_length: int, clean: str = "lower",
                 additional_special_tokens: Sequence[str] = ()) -> None:
        if clean not in CLEANERS:
            raise ModelError(f"tokenizer cleaner {clean!r} is not one of {', '.join(CLEANERS)}")
        if context_length < 2:
            raise ModelError(f"a tokenizer context of {context_length} cannot hold start and end tokens")
        try:
            lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise ModelError(f"cannot read the BPE vocabulary {bpe_path}: {e}") from e
        merges = [tuple(m.split()) for m in lines[1:N_MERGES + 1]]
        byte_chars = list(bytes_to_unicode().values())
        vocab = byte_chars + [v + "</w>" for v in byte_chars] + ["".join(m) for m in merges]
        special = ["<start_of_text>", "<end_of_text>", *additional_special_tokens]
        vocab.extend(special)
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache: dict[str, str] = {t: t for t in special}
        self.pat = re.compile("|".join(special) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                              re.IGNORECASE)
        self.byte_encoder = bytes_to_unicode()
        self.sot_token_id, self.eot_token_id = self.encoder[special[0]], self.encoder[special[1]]
        self.vocab_size = len(self.encoder)
        self.context_length = int(context_length)
        self.clean_fn = CLEANERS[clean]

    def bpe(self, token: str) -> str:
        """The space-separated BPE pieces of one pre-token (memoised, as open_clip does)."""
        if token in self.cache:
            return self.cache[token]
        word: tuple[str, ...] = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = set(zip(word, word[1:]))
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = set(zip(word, word[1:]))
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """The BPE ids of ``text`` (no start/end tokens, no truncation)."""
        ids: list[int] = []
        for token in re.findall(self.pat, self.clean_fn(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(token).split(" "))
        return ids

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.context_length), np.int64)
        for i, text in enumerate(texts):
            tokens = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(tokens) > self.context_length:
                tokens = tokens[:self.context_length]
                tokens[-1] = self.eot_token_id
            out[i, :len(tokens)] = tokens
        return out
