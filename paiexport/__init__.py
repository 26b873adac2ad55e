"""paiexport: prune at initialization, train sparse, ship validated and benchmarked ONNX."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("paiexport")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"


def __getattr__(name: str) -> object:
    """`from paiexport import Recipe, run_recipe, load_recipe`, imported on first use (the CLI stays fast)."""
    if name in {"Recipe", "run_recipe", "load_recipe"}:
        from paiexport import api

        return getattr(api, name)
    raise AttributeError(f"module 'paiexport' has no attribute {name!r}")
