"""What inputs an ONNX file takes and how to make them (`bench`, `validate`, the memory probe).

Rules:
- Graph inputs that are also initializers are weights (old IR files list them), not inputs.
- The first dimension of every input of rank >= 1 is the batch. A dynamic batch takes each
  requested batch size; a fixed one (e.g. 1) takes only that size: any other is refused.
- Every other dynamic dimension needs `--shape NAME=1x3x32x32` (the full shape; its first
  number stands for the batch and is replaced by the batch size). Dimensions the file fixes
  must agree with `--shape`.
- Random values: floats are standard normal; integers are uniform in [0, N) for an input the
  file's `paiexport.input_vocab` gives N (the ids the model was run on), else in [0, INT_HIGH)
  so they are valid as indices into any axis of size >= INT_HIGH (token ids, Gather); bools
  are fair coin flips; an integer or bool input named `*mask` (attention_mask) is all ones, every
  position attended, as a full-length sequence is. String and non-tensor inputs cannot be made:
  refused.
- A sequence axis is a dynamic dimension 1 (after the batch) of an input (token ids, masks);
  `sequence_shapes` sets it to a length for every input that has one (`bench.seq_lens`).
- Before anything is allocated, the bytes of all inputs at the largest batch are summed and
  refused above `MEMORY_FRACTION` of the available memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, TensorProto

from paiexport.errors import UserError
from paiexport.export.metadata import read_vocab

INT_HIGH = 2  # integer inputs are 0 or 1: in range for every axis of size >= 2
MEMORY_FRACTION = 0.5  # of the available memory, for all inputs of all files at the largest batch
_MAKEABLE = {
    TensorProto.FLOAT,
    TensorProto.FLOAT16,
    TensorProto.DOUBLE,
    TensorProto.BOOL,
    TensorProto.INT8,
    TensorProto.INT16,
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.UINT8,
    TensorProto.UINT16,
    TensorProto.UINT32,
    TensorProto.UINT64,
}

Dim = int | str  # a fixed size, or the symbolic name ("?" when unnamed) of a dynamic one


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    dims: tuple[Dim, ...] | None  # None: the file declares no shape at all
    high: int | None = None  # integers: valid values are [0, high) (`paiexport.input_vocab`)


def _dims(value: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)


def graph_inputs(model: ModelProto, source: str) -> list[InputSpec]:
    """The inputs a caller must feed; `UserError` naming `source` for inputs no one can make."""
    weights = {t.name for t in model.graph.initializer} | {
        s.values.name for s in model.graph.sparse_initializer
    }
    specs = []
    vocab = read_vocab({p.key: p.value for p in model.metadata_props})
    for value in model.graph.input:
        if value.name in weights:
            continue
        if not value.type.HasField("tensor_type"):
            raise UserError(
                f"{source}: input {value.name!r} is not a tensor (sequence/map/optional are not supported)"
            )
        elem = value.type.tensor_type.elem_type
        if elem == TensorProto.STRING:
            raise UserError(
                f"{source}: input {value.name!r} is a string tensor; only numeric and bool inputs can be made"
            )
        if elem not in _MAKEABLE:
            name = TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else str(elem)
            raise UserError(f"{source}: input {value.name!r} has element type {name}, which is not supported")
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        specs.append(InputSpec(value.name, dtype, _dims(value), vocab.get(value.name)))
    if not specs:
        raise UserError(f"{source}: the graph has no inputs to feed")
    return specs


def parse_shapes(texts: list[str], option: str = "--shape") -> dict[str, tuple[int, ...]]:
    """['x=1x3x32x32'] -> {'x': (1, 3, 32, 32)}; anything else is a `UserError` naming the option."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, sep, dims = text.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d < 1 for d in shape):
            raise UserError(
                f"{option} {text[:80]!r}: expected NAME=DIMS with positive sizes, e.g. x=1x3x32x32"
            )
        shapes[name] = shape
    return shapes


def _resolve_one(spec: InputSpec, batch: int, given: tuple[int, ...] | None, source: str) -> tuple[int, ...]:
    dims = spec.dims if spec.dims is not None else (None if given is None else ("?",) * len(given))
    if dims is None:
        raise UserError(f"{source}: input {spec.name!r} declares no shape; pass --shape {spec.name}=DIMS")
    if given is not None and len(given) != len(dims):
        raise UserError(f"--shape {spec.name}: {len(given)} dimensions, but {source} declares {len(dims)}")
    shape = []
    for i, dim in enumerate(dims):
        if i == 0:
            if isinstance(dim, int) and dim != batch:
                raise UserError(
                    f"{source}: input {spec.name!r} has a fixed batch dimension of {dim}; "
                    f"batch size {batch} is not possible (use --batch-sizes {dim})"
                )
            shape.append(batch)
        elif isinstance(dim, int):
            if given is not None and given[i] != dim:
                raise UserError(
                    f"--shape {spec.name}: dimension {i} is {given[i]}, but {source} fixes it to {dim}"
                )
            shape.append(dim)
        elif given is None:
            raise UserError(
                f"{source}: input {spec.name!r} dimension {i} ({dim}) is dynamic; "
                f"pass --shape {spec.name}=DIMS to choose it"
            )
        else:
            shape.append(given[i])
    return tuple(shape)


def resolve_shapes(
    specs: list[InputSpec], batch: int, shapes: dict[str, tuple[int, ...]], source: str
) -> dict[str, tuple[int, ...]]:
    """Concrete shape of every input at `batch` (see the module's rules)."""
    return {s.name: _resolve_one(s, batch, shapes.get(s.name), source) for s in specs}


def feed_bytes(specs: list[InputSpec], resolved: dict[str, tuple[int, ...]]) -> int:
    """Exact bytes of the inputs, in Python integers (no overflow for absurd declared shapes)."""
    return sum(prod(resolved[s.name]) * s.dtype.itemsize for s in specs)


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(needed: int, what: str) -> None:
    """`UserError` before allocating when `needed` bytes exceed the allowed share of memory."""
    limit = int(available_memory() * MEMORY_FRACTION)
    if needed > limit:
        raise UserError(
            f"{what}: inputs need {needed / 2**30:,.2f} GiB, more than the {limit / 2**30:,.2f} GiB allowed "
            f"({MEMORY_FRACTION:.0%} of available memory); choose smaller --batch-sizes or --shape"
        )


def random_feeds(
    specs: list[InputSpec], resolved: dict[str, tuple[int, ...]], seed: int = 0
) -> dict[str, np.ndarray]:
    """One random array per input (values as in the module's rules), same seed -> same arrays."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = resolved[s.name]
        if s.dtype.kind == "f":
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
        elif s.name.lower().endswith("mask"):
            feeds[s.name] = np.ones(shape, dtype=s.dtype)
        elif s.dtype.kind == "b":
            feeds[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            high = min(s.high, np.iinfo(s.dtype).max) if s.high else INT_HIGH
            feeds[s.name] = rng.integers(0, high, shape).astype(s.dtype)
    return feeds


def has_sequence_axis(spec: InputSpec) -> bool:
    """Whether dimension 1 of the input is dynamic (a sequence: token ids, a mask)."""
    return spec.dims is not None and len(spec.dims) >= 2 and isinstance(spec.dims[1], str)


def sequence_shapes(
    specs: list[InputSpec], shapes: dict[str, tuple[int, ...]], length: int
) -> dict[str, tuple[int, ...]] | None:
    """`shapes` (full shapes, the batch first) with the sequence axis of every input that has one
    set to `length`; an input missing from `shapes` is (1, length). None: no input has one."""
    with_axis = [s for s in specs if has_sequence_axis(s)]
    if not with_axis:
        return None
    out = dict(shapes)
    for spec in with_axis:
        given = shapes.get(spec.name)
        if given is None:
            given = tuple(1 if isinstance(d, str) else d for d in spec.dims or ())
        out[spec.name] = (given[0], length, *given[2:])
    return out


def data_input(specs: list[InputSpec], shapes: dict[str, tuple[int, ...]], source: str) -> str:
    """The one float input a dataset's samples go to (`validate --data`); anything else is refused."""
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise UserError(f"{source}: --data feeds one input, the file takes {len(specs)} ({names})")
    spec = specs[0]
    if spec.dtype.kind != "f":
        raise UserError(f"{source}: input {spec.name!r} is {spec.dtype}; --data feeds float samples")
    unknown = sorted(set(shapes) - {spec.name})
    if unknown:
        raise UserError(f"--shape {unknown[0]}: {source} has no input of that name (it has {spec.name})")
    return spec.name


def check_data_shape(name: str, shapes: dict[str, tuple[int, ...]], sample: tuple[int, ...]) -> None:
    """With `validate`, the dataset sets the dynamic dimensions; a `--shape` must agree with it."""
    given = shapes.get(name)
    if given is not None and tuple(given[1:]) != sample:
        per_sample = "x".join(map(str, given[1:]))
        data = "x".join(map(str, sample))
        raise UserError(f"--shape {name}: {per_sample} per sample, but the --data samples are {data}")


def file_inputs(path: Path) -> list[InputSpec]:
    return graph_inputs(onnx.load(str(path), load_external_data=False), str(path))


def plan_inputs(
    files: dict[str, Path], batch_sizes: list[int], shapes: dict[str, tuple[int, ...]]
) -> dict[str, list[InputSpec]]:
    """Every file's inputs, checked at every batch size and for memory before anything is allocated."""
    specs = {label: file_inputs(path) for label, path in files.items()}
    unknown = sorted(set(shapes) - {s.name for found in specs.values() for s in found})
    if unknown:
        raise UserError(f"--shape {unknown[0]}: no file has an input of that name")
    for batch in batch_sizes:
        for label, path in files.items():
            resolve_shapes(specs[label], batch, shapes, str(path))
    largest = max(batch_sizes)
    needed = sum(
        feed_bytes(specs[label], resolve_shapes(specs[label], largest, shapes, str(path)))
        for label, path in files.items()
    )
    check_memory(needed, f"--batch-sizes {largest}")
    return specs
