"""A character-level language model on text that ships with Python: the standard library's own
source files. Nothing is downloaded; the same Python gives the same text.

`datasets()` cuts the text into windows of `WINDOW` characters; a sample is (tokens, tokens):
the `language_model` task shifts them itself (outputs at t predict the token at t + 1).
`tiny_gpt` is a small decoder: token and position embeddings, pre-norm causal self-attention
blocks (`scaled_dot_product_attention(is_causal=True)`) and an MLP per block.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

WINDOW = 64
SOURCES = (
    "textwrap.py",
    "string/__init__.py",
    "fnmatch.py",
    "shlex.py",
    "glob.py",
    "calendar.py",
    "bisect.py",
    "heapq.py",
    "colorsys.py",
    "copy.py",
    "keyword.py",
    "getopt.py",
)
VOCAB = 96  # printable ASCII (32..126) plus newline; anything else maps to a space


def encode(text: str) -> torch.Tensor:
    codes = [10 if c == "\n" else ord(c) if 32 <= ord(c) < 127 else 32 for c in text]
    return torch.tensor([0 if c == 10 else c - 31 for c in codes], dtype=torch.int64)


def stdlib_text() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    return "\n".join((root / name).read_text(encoding="utf-8") for name in SOURCES if (root / name).is_file())


def datasets(window: int = WINDOW) -> tuple[TensorDataset, TensorDataset]:
    tokens = encode(stdlib_text())
    n = len(tokens) // window
    chunks = tokens[: n * window].reshape(n, window)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # every file in both splits
    split = int(n * 0.9)
    train, test = chunks[order[:split]], chunks[order[split:]]
    return TensorDataset(train, train), TensorDataset(test, test)


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, c // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyGPT(nn.Module):
    def __init__(
        self, vocab: int = VOCAB, width: int = 64, heads: int = 4, layers: int = 2, window: int = 256
    ) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, width), nn.Embedding(window, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        return self.head(self.norm(self.blocks(x)))


def tiny_gpt(width: int = 64, heads: int = 4, layers: int = 2, **_: object) -> TinyGPT:
    return TinyGPT(VOCAB, width, heads, layers)
