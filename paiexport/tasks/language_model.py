"""Language modelling: next-token cross-entropy on token sequences (N, T), logits (N, T, V).

The task does the shift: `outputs[:, :-1]` predict `targets[:, 1:]` (a dataset may give the
tokens themselves as `y`). Metrics over the whole split's predicted tokens:
- `perplexity` (primary, lower is better): exp of the mean negative log-likelihood per token;
- `token_accuracy`: the share of tokens whose logit is the highest.
Baseline: the training tokens' unigram distribution, add-one smoothed over the vocabulary (an
unseen test token costs log(n + V) nats, not infinity); its perplexity on the test split.

`drop` is relative: `value / reference - 1` (0.05: the perplexity grew by 5%). Perplexity has
no fixed scale (about 3 for characters, 20 to 200 for word pieces), so one absolute default
would be loose for one and strict for another; a ratio means the same at every scale.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from paiexport.tasks.base import Meter, Task, TaskConfig, declared_width, in_range, require_integer


class LanguageModelConfig(TaskConfig):
    name: Literal["language_model"] = "language_model"


def shifted(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (M, V), next tokens (M,)): position t's logits against token t + 1."""
    return outputs[:, :-1].reshape(-1, outputs.shape[-1]), targets[:, 1:].reshape(-1)


class _Tokens(Meter):
    def __init__(self) -> None:
        self.tokens = self.hits = 0
        self.nll = 0.0

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        logits, nxt = shifted(outputs.detach().float(), targets.detach())
        self.nll += float(torch.nn.functional.cross_entropy(logits, nxt, reduction="sum"))
        self.hits += int((logits.argmax(dim=1) == nxt).sum())
        self.tokens += len(nxt)

    def result(self) -> dict[str, float]:
        if not self.tokens:  # nothing predicted: the worst values, not a perfect perplexity of 1
            return {"perplexity": math.inf, "token_accuracy": 0.0}
        return {"perplexity": math.exp(self.nll / self.tokens), "token_accuracy": self.hits / self.tokens}


class LanguageModel(Task):
    config_class = LanguageModelConfig
    primary = "perplexity"
    higher_is_better = False
    short = "ppl"
    default_max_drop = 0.05  # relative: the perplexity may grow by 5%
    relative_drop = True
    targets_are_inputs = True  # npz: y_* may be left out; the task shifts the tokens itself

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(*shifted(outputs, targets))

    def meter(self) -> Meter:
        return _Tokens()

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        y = require_integer(self, y, where, "token ids")
        if y.ndim != 2 or y.shape[1] < 2:
            self.refuse(
                where, f"targets have shape {tuple(y.shape)}; one sequence of at least 2 tokens per sample"
            )
        in_range(self, y, where, None)
        return y

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        found = max(int(train_y.max()) if train_y.numel() else 0, int(test_y.max()) if test_y.numel() else 0)
        return declared_width(self, found + 1, declared, "token ids")

    def check_outputs(self, outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
        if outputs.ndim != 3 or outputs.shape[:2] != targets.shape:
            shape, needed = tuple(outputs.shape), (*targets.shape, "V")
            self.refuse(where, f"output of shape {shape}; needs logits per token, {needed}")

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        counts = torch.bincount(train_y.flatten(), minlength=width).to(torch.float64)
        log_p = (counts + 1.0).log() - math.log(float(counts.sum()) + width)
        nxt = test_y[:, 1:].flatten()
        return math.exp(-float(log_p[nxt].mean())) if nxt.numel() else math.inf
