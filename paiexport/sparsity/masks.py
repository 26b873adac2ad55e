"""The one place where masks live: a `weight_mask` buffer on each pruned module.

`attach_masks` zeroes the pruned weights, masks their gradients in backward, and
`enforce_after_step` re-applies the masks after every optimizer step. With zero
weights, zero gradients and therefore zero optimizer state at pruned positions,
any standard optimizer leaves them exactly zero; the post-step multiply makes that
a guarantee rather than an argument. The training loop knows none of this.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

import torch
from torch import nn

from paiexport.sparsity.types import Masks

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
MASK_BUFFER = "weight_mask"
WANT_DENSE_GRAD = "_paiexport_want_dense_grad"
DENSE_GRAD = "_paiexport_dense_grad"


def prunable_modules(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """Linear/Conv modules whose weight is prunable, keyed by the weight's parameter name.

    `exclude` holds glob patterns matched against parameter names ("0.weight", "fc.*"). A
    weight shared by several modules (tied weights) is one weight: listed once, under the
    first module that holds it, so it is counted and masked once.
    """
    patterns = list(exclude)
    found: dict[str, nn.Module] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES) or id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        name = f"{module_name}.weight" if module_name else "weight"
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            found[name] = module
    return found


def holders(model: nn.Module, weight: torch.Tensor) -> list[tuple[nn.Module, str]]:
    """Every (module, parameter name) that holds `weight`: more than one when weights are tied."""
    return [(m, n) for m in model.modules() for n, p in m._parameters.items() if p is weight]


def tied_weights(model: nn.Module) -> dict[str, list[str]]:
    """Prunable weights that more than one module holds: listed name -> every name of that tensor."""
    names: dict[int, list[str]] = {id(w): [] for w in prunable_weights(model).values()}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in names and name not in names[id(p)]:
            names[id(p)].append(name)
    return {group[0]: group for group in names.values() if len(group) > 1}


def prunable_weights(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    return {name: m.weight for name, m in prunable_modules(model, exclude).items()}


def _mask_grad(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        if module.__dict__.pop(WANT_DENSE_GRAD, False):  # one backward only, see request_dense_grads
            setattr(module, DENSE_GRAD, grad.detach().clone())
        # Read the buffer at call time: dynamic methods swap masks during training.
        return grad * getattr(module, MASK_BUFFER)

    return hook


def attach_masks(model: nn.Module, masks: Masks) -> None:
    """Attach (or replace) masks; pruned weights become exactly zero."""
    modules = prunable_modules(model)
    for name, mask in masks.items():
        if name not in modules:
            raise KeyError(f"no prunable weight named {name!r}")
        module = modules[name]
        if mask.shape != module.weight.shape:
            raise ValueError(
                f"mask for {name} has shape {tuple(mask.shape)}, weight has {tuple(module.weight.shape)}"
            )
        mask = mask.to(dtype=module.weight.dtype, device=module.weight.device)
        if hasattr(module, MASK_BUFFER):
            getattr(module, MASK_BUFFER).copy_(mask)
        else:
            module.register_buffer(MASK_BUFFER, mask.clone())
            module._paiexport_grad_hook = module.weight.register_hook(_mask_grad(module))
        with torch.no_grad():
            module.weight.mul_(getattr(module, MASK_BUFFER))


def request_dense_grads(model: nn.Module) -> None:
    """Make the next backward also record each masked weight's unmasked gradient.

    The optimizer still sees masked gradients; read the dense ones with `pop_dense_grads`.
    RigL needs them only on mask-update steps, so ordinary steps pay nothing.
    """
    for module in model.modules():
        if hasattr(module, MASK_BUFFER):
            setattr(module, WANT_DENSE_GRAD, True)


def pop_dense_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Dense gradients recorded since `request_dense_grads`, keyed by parameter name."""
    return {
        name: m.__dict__.pop(DENSE_GRAD)
        for name, m in prunable_modules(model).items()
        if DENSE_GRAD in m.__dict__
    }


def get_masks(model: nn.Module) -> Masks:
    """Current masks as bool tensors, keyed by parameter name."""
    return {
        name: getattr(m, MASK_BUFFER).bool().clone()
        for name, m in prunable_modules(model).items()
        if hasattr(m, MASK_BUFFER)
    }


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Multiply every masked weight by its mask (idempotent)."""
    for module in model.modules():
        if hasattr(module, MASK_BUFFER):
            module.weight.mul_(getattr(module, MASK_BUFFER))


def enforce_after_step(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Register a post-step hook so pruned weights are zero after every optimizer step."""
    optimizer.register_step_post_hook(lambda *_: apply_masks(model))


def strip_masks(model: nn.Module) -> nn.Module:
    """Bake masks into the weights and remove buffers and hooks, in place.

    Call this on a copy before export: a mask left attached would be exported as a
    second dense tensor.
    """
    apply_masks(model)
    for module in model.modules():
        if hasattr(module, MASK_BUFFER):
            del module._buffers[MASK_BUFFER]
            module._paiexport_grad_hook.remove()
            del module._paiexport_grad_hook
            module.__dict__.pop(WANT_DENSE_GRAD, None)
            module.__dict__.pop(DENSE_GRAD, None)
    return model


def sparsity_of(tensor: torch.Tensor) -> float:
    return 1.0 - float(torch.count_nonzero(tensor)) / max(tensor.numel(), 1)


def masks_sparsity(masks: Masks) -> float:
    """The share of the masked weights a selection removes (False entries over all entries; 0
    for no masks)."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / total if total else 0.0


def layer_sparsity(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, float]:
    """Fraction of exactly-zero entries of each prunable weight."""
    return {name: sparsity_of(w.detach()) for name, w in prunable_weights(model, exclude).items()}


def overall_sparsity(model: nn.Module, exclude: Iterable[str] = ()) -> float:
    weights = prunable_weights(model, exclude).values()
    total = sum(w.numel() for w in weights)
    zeros = sum(w.numel() - int(torch.count_nonzero(w)) for w in weights)
    return zeros / max(total, 1)
