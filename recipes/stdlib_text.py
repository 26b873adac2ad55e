"""Datasets of the bundled transformer recipes, cut from text that ships with Python: the source
files of its standard library (`sysconfig.get_paths()["stdlib"]`). Nothing is downloaded; the
same Python gives the same text.

Characters are token ids: 0 is padding, 1 the classification token, 2 a newline, 3..97 printable
ASCII (anything else is a space), so `VOCAB` = 98.

- `modules()`: sequence classification. A sample is the classification token (BERT's [CLS], whose
  final state the classifier reads) and a window of one of `MODULES`; the class is the module it
  comes from. Samples end after 32 to 64 tokens (seeded), the rest of the `WINDOW` is padding,
  so `attention_mask` matters. Each file's first 80% gives the
  training windows, the last 20% the test windows (no window straddles the split), and every
  module gives as many windows as the smallest one: the classes are balanced (chance 1/6).
- `characters()`: a character-level language model, windows of `WINDOW` characters of the same
  files; a sample is (tokens, tokens): the `language_model` task shifts them itself.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from torch.utils.data import Dataset, TensorDataset

WINDOW = 64
SHORTEST = 32
MODULES = ("argparse.py", "tarfile.py", "statistics.py", "smtplib.py", "difflib.py", "dataclasses.py")
VOCAB = 98
CLS = 1
TRAIN_SHARE = 0.8


def encode(text: str) -> torch.Tensor:
    """Token ids of `text` (see the module docstring)."""
    ids = [2 if c == "\n" else ord(c) - 29 if 32 <= ord(c) < 127 else 3 for c in text]
    return torch.tensor(ids, dtype=torch.int64)


def source(name: str) -> str:
    path = Path(sysconfig.get_paths()["stdlib"]) / name
    return path.read_text(encoding="utf-8")


def windows(tokens: torch.Tensor, stride: int, width: int = WINDOW) -> torch.Tensor:
    """Every window of `width` tokens starting at a multiple of `stride`."""
    return tokens.unfold(0, width, stride)


class ModuleWindows(Dataset):
    """({"input_ids", "attention_mask"}, class) samples; see `modules()`."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(SHORTEST, WINDOW + 1, (len(ids),), generator=g)
        self.mask = (torch.arange(WINDOW)[None] < lengths[:, None]).long()
        with_cls = torch.cat([torch.full((len(ids), 1), CLS), ids], dim=1)
        self.ids = with_cls * self.mask  # padding is token 0
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], int]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}, int(self.labels[i])


def _split(stride: int, width: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    train, test = [], []
    for name in MODULES:
        tokens = encode(source(name))
        cut = int(len(tokens) * TRAIN_SHARE)
        train.append(windows(tokens[:cut], stride, width))
        test.append(windows(tokens[cut:], stride, width))
    return train, test


def _balanced(parts: list[torch.Tensor], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """As many windows of every module as the smallest has (evenly spread over each file)."""
    n = min(len(p) for p in parts)
    picked = [p[torch.linspace(0, len(p) - 1, n).round().long()] for p in parts]
    labels = torch.arange(len(parts)).repeat_interleave(n)
    return torch.cat(picked), labels


def modules(stride: int = 32) -> tuple[ModuleWindows, ModuleWindows]:
    """(train, test): which standard-library module a window of its source comes from."""
    train, test = _split(stride, WINDOW - 1)
    return ModuleWindows(*_balanced(train, 0), seed=0), ModuleWindows(*_balanced(test, 1), seed=1)


def characters() -> tuple[TensorDataset, TensorDataset]:
    """(train, test) windows of `WINDOW` characters for a language model (targets: the tokens)."""
    train, test = _split(WINDOW, WINDOW)
    train_x, test_x = torch.cat(train), torch.cat(test)
    return TensorDataset(train_x, train_x), TensorDataset(test_x, test_x)
