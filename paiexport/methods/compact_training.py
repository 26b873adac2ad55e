"""Which recipes can train the physically smaller model (`train.compact`)."""

from paiexport.methods import METHODS
from paiexport.methods.score import ScoreMethod
from paiexport.sparsity.types import StructureKind


def check_compact_training(structure: object, method_name: str) -> None:
    """`train.compact` needs whole channels chosen once, before training (static masks)."""
    if structure is not StructureKind.channel:
        raise ValueError("train.compact: needs sparsity.structure: channel (whole channels to remove)")
    method = METHODS[method_name]
    # A criterion that overrides `fit` (lth, gmp, dynamic methods) changes its masks later.
    if not issubclass(method, ScoreMethod) or method.fit is not ScoreMethod.fit:
        raise ValueError(
            f"train.compact: needs static masks chosen once at initialization; {method_name} "
            "changes its masks during or after training"
        )
