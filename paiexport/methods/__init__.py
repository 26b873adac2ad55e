"""The method registry: `method.name` in a recipe -> the class that implements it."""

from paiexport.methods.base import Method, MethodConfig, ScoreMethod, SelectionContext
from paiexport.methods.dense import Dense
from paiexport.methods.magnitude import Magnitude
from paiexport.methods.random_pruning import RandomPruning
from paiexport.methods.snip import Snip

METHODS: dict[str, type[Method]] = {
    "dense": Dense,
    "random": RandomPruning,
    "magnitude": Magnitude,
    "snip": Snip,
}


def make_method(config: MethodConfig) -> Method:
    return METHODS[config.name](config)


__all__ = ["METHODS", "Method", "MethodConfig", "ScoreMethod", "SelectionContext", "make_method"]
