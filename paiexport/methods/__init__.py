"""The method registry: `method.name` in a recipe -> the class that implements it."""

from paiexport.methods.base import FitResult, Method, MethodConfig, SelectionContext
from paiexport.methods.dense import Dense
from paiexport.methods.edge_popup import EdgePopup
from paiexport.methods.gmp import GradualMagnitudePruning
from paiexport.methods.grasp import Grasp
from paiexport.methods.lth import LotteryTicket
from paiexport.methods.magnitude import Magnitude
from paiexport.methods.magnitude_after_training import MagnitudeAfterTraining
from paiexport.methods.random_pruning import RandomPruning
from paiexport.methods.rigl import RigL
from paiexport.methods.score import ScoreMethod
from paiexport.methods.set import SET
from paiexport.methods.snfs import SNFS
from paiexport.methods.snip import Snip
from paiexport.methods.supermask import Supermask
from paiexport.methods.synflow import Synflow

METHODS: dict[str, type[Method]] = {
    "dense": Dense,
    "random": RandomPruning,
    "magnitude": Magnitude,
    "snip": Snip,
    "grasp": Grasp,
    "synflow": Synflow,
    "lth": LotteryTicket,
    "gmp": GradualMagnitudePruning,
    "magnitude_after_training": MagnitudeAfterTraining,
    # dynamic sparse training (mask changes, sparsity does not)
    "set": SET,
    "rigl": RigL,
    "snfs": SNFS,
    # sparse selection (weights never trained)
    "edge_popup": EdgePopup,
    "supermask": Supermask,
}


# The method every sparse result is compared with: the one that does not prune.
BASELINE_METHOD = next(name for name, cls in METHODS.items() if not cls.prunes)


def is_baseline(name: object) -> bool:
    """`name` (maybe an unvalidated recipe value) is a method that prunes nothing."""
    return isinstance(name, str) and name in METHODS and not METHODS[name].prunes


def make_method(config: MethodConfig) -> Method:
    return METHODS[config.name](config)


__all__ = [
    "BASELINE_METHOD",
    "METHODS",
    "FitResult",
    "Method",
    "MethodConfig",
    "ScoreMethod",
    "SelectionContext",
    "is_baseline",
    "make_method",
]
