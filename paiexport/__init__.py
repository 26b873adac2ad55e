"""paiexport: prune at initialization, train sparse, ship validated and benchmarked ONNX."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("paiexport")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
