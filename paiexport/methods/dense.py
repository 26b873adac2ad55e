"""No pruning: the dense baseline every sparse result is compared with."""

from typing import Literal

from paiexport.methods.base import Method, MethodConfig, SelectionContext
from paiexport.sparsity.types import Masks


class DenseConfig(MethodConfig):
    name: Literal["dense"] = "dense"


class Dense(Method):
    """Train every weight; `sparsity.target` is ignored (reported as 0)."""

    config_class = DenseConfig
    prunes = False

    def select(self, ctx: SelectionContext) -> Masks | None:
        return None
