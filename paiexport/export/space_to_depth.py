"""Run narrow high-resolution convolutions on 2x2 pixel blocks: an exact ONNX relayout.

Why: onnxruntime's CPU convolutions work on blocks of 16 channels (MLAS NCHWc on AVX-512),
so a 4-channel convolution is computed padded to 16 channels and then reordered back, and
its int8 kernel is slower than float (`benchmarks/narrow_convs.py`). A compact network
keeps few channels exactly where the resolution is highest (resnet20's first stage: 4
channels at 32x32 at 75% channel sparsity). Holding those tensors as `SpaceToDepth` blocks
(C channels at HxW -> 4C at H/2 x W/2) turns each such convolution into one with 4x the
channels at a quarter of the pixels: no padding waste, and wide enough for int8.

Derivation (stride 1, kernel k in {1, 3}, pads k//2, H and W even). ONNX SpaceToDepth puts
pixel (2i+a, 2j+b) of channel c at channel (2a+b)*C + c of block (i, j). Output pixel
(2i+a, 2j+b) reads input rows 2i+a+dy-p for dy in [0, k): row r lies in block i + floor(r'/2)
with sub-row r' mod 2, where r' = a+dy-p. So the blocked kernel W' (4Co, 4Ci, k', k') has
W'[(2a+b)Co + o, (2a'+b')Ci + c, 1+floor((a+dy-p)/2), 1+floor((b+dx-p)/2)] = W[o, c, dy, dx]
(k' = 3, pad 1 for k = 3; k' = 1 for k = 1), every other entry zero. Zero padding of the
image is zero padding of whole blocks, so borders stay exact; the bias repeats 4 times.
Element-wise ops (Relu, Add, ...) act on blocks unchanged; their constant operands are
relaid the same way. Anything else reads the tensor back through `DepthToSpace` (DCR, the
inverse), so the graph's outputs and every other op see what they saw before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, helper, numpy_helper

BLOCK = 2
_ELEMENTWISE = {"Relu", "Add", "Sub", "Mul", "Clip", "Sigmoid", "LeakyRelu", "HardSwish", "Tanh"}


def blocked_kernel(weight: np.ndarray) -> np.ndarray:
    """(Co, Ci, k, k) stride 1 -> the (4Co, 4Ci, k', k') kernel from blocks to blocks."""
    co, ci, k, _ = weight.shape
    pad, size = k // 2, 3 if k == 3 else 1
    out = np.zeros((4 * co, 4 * ci, size, size), dtype=weight.dtype)
    for a in range(BLOCK):
        for b in range(BLOCK):
            rows = slice((2 * a + b) * co, (2 * a + b + 1) * co)
            out[rows] = _from_blocks(weight, a - pad, b - pad, size // 2, size)
    return out


def strided_kernel(weight: np.ndarray) -> np.ndarray:
    """(Co, Ci, k, k) stride 2 -> the (Co, 4Ci, k', k') kernel from blocks to plain pixels.

    Output pixel i reads rows 2i+dy-p: block i + floor((dy-p)/2), i.e. blocks i-1 and i for
    k = 3 (k' = 2, padded 1 before and 0 after), block i alone for k = 1."""
    k = weight.shape[2]
    return _from_blocks(weight, -(k // 2), -(k // 2), 1 if k == 3 else 0, 2 if k == 3 else 1)


def _from_blocks(weight: np.ndarray, shift_y: int, shift_x: int, centre: int, size: int) -> np.ndarray:
    """Kernel over blocks for one output position whose taps start `shift` pixels away."""
    co, ci, k, _ = weight.shape
    out = np.zeros((co, 4 * ci, size, size), dtype=weight.dtype)
    for dy in range(k):
        for dx in range(k):
            ry, rx = shift_y + dy, shift_x + dx
            src = (2 * (ry % 2) + rx % 2) * ci
            out[:, src : src + ci, ry // 2 + centre, rx // 2 + centre] += weight[:, :, dy, dx]
    return out


def blocked_constant(value: np.ndarray, channels: int) -> np.ndarray | None:
    """An element-wise operand relaid like the tensor it meets, or None when it cannot be."""
    if value.size == 1:
        return value
    if value.ndim == 4 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 3 or value.shape[0] != channels:
        return None
    c, h, w = value.shape
    if h == w == 1:
        return np.tile(value, (4, 1, 1))
    if h % BLOCK or w % BLOCK:
        return None
    blocks = value.reshape(c, h // 2, 2, w // 2, 2).transpose(2, 4, 0, 1, 3)
    return blocks.reshape(4 * c, h // 2, w // 2)


@dataclass
class _Pass:
    model: ModelProto
    min_channels: int
    shapes: dict[str, list[int]] = field(default_factory=dict)
    weights: dict[str, onnx.TensorProto] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)  # tensor -> its blocked twin
    produced_blocked: set[str] = field(default_factory=set)  # only the blocked twin is computed
    nodes: list[NodeProto] = field(default_factory=list)
    new_weights: list[onnx.TensorProto] = field(default_factory=list)
    relaid: int = 0

    def attr(self, node: NodeProto, name: str, default: object) -> object:
        found = [helper.get_attribute_value(a) for a in node.attribute if a.name == name]
        return found[0] if found else default

    def plain_conv(self, node: NodeProto, stride: int) -> bool:
        """A Conv this pass can rewrite: group 1, kernel 1 or 3 with 'same' pads, `stride`,
        constant weights, a 4-D input with even height and width."""
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in self.weights:
            return False
        if len(node.input) > 2 and node.input[2] and node.input[2] not in self.weights:
            return False
        shape, dims = self.shapes.get(node.input[0]), list(self.weights[node.input[1]].dims)
        if shape is None or len(shape) != 4 or dims[2:] not in ([1, 1], [3, 3]):
            return False
        plain = self.attr(node, "group", 1) == 1 and self.attr(node, "auto_pad", b"NOTSET") == b"NOTSET"
        plain &= list(self.attr(node, "strides", [1, 1])) == [stride] * 2
        plain &= list(self.attr(node, "dilations", [1, 1])) == [1, 1]
        plain &= list(self.attr(node, "pads", [0] * 4)) == [dims[2] // 2] * 4
        return plain and all(isinstance(d, int) and d > 0 and d % BLOCK == 0 for d in shape[2:])

    def eligible(self, node: NodeProto) -> bool:
        """Narrow stride-1 convolutions run on blocks."""
        return self.plain_conv(node, 1) and self.weights[node.input[1]].dims[0] < self.min_channels

    def reads_blocks_strided(self, node: NodeProto) -> bool:
        """A stride-2 convolution of a tensor that exists as blocks reads the blocks directly."""
        return node.input[0] in self.produced_blocked and self.plain_conv(node, 2)

    def add(self, op: str, inputs: list[str], output: str, name: str, **attrs: object) -> None:
        """Append an `op` node named `name`, with one output."""
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))

    def to_blocks(self, name: str) -> str:
        """The blocked twin of `name`, adding a SpaceToDepth when it has none yet."""
        if name not in self.blocked:
            self.blocked[name] = f"{name}__s2d"
            self.add("SpaceToDepth", [name], self.blocked[name], f"{name}__s2d", blocksize=BLOCK)
        return self.blocked[name]

    def constant(self, name: str, value: np.ndarray) -> str:
        tensor = numpy_helper.from_array(value, f"{name}__s2d")
        self.new_weights.append(tensor)
        return tensor.name

    def conv(self, node: NodeProto) -> None:
        """Blocks in, blocks out (stride 1), or blocks in, plain pixels out (stride 2)."""
        weight = numpy_helper.to_array(self.weights[node.input[1]])
        strided, k = self.attr(node, "strides", [1, 1])[0] == 2, weight.shape[2]
        kernel = strided_kernel(weight) if strided else blocked_kernel(weight)
        inputs = [self.to_blocks(node.input[0]), self.constant(node.input[1], kernel)]
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(self.weights[node.input[2]])
            inputs.append(node.input[2] if strided else self.constant(node.input[2], np.tile(bias, 4)))
        size = kernel.shape[2]
        pads = [1, 1, 0, 0] if strided and k == 3 else [size // 2] * 4
        out = node.output[0] if strided else self._blocked_output(node.output[0])
        self.add("Conv", inputs, out, f"{node.name}__s2d", group=1, kernel_shape=[size] * 2, pads=pads)
        self.relaid += 1

    def _blocked_output(self, name: str) -> str:
        self.blocked[name] = f"{name}__s2d"
        self.produced_blocked.add(name)
        return self.blocked[name]

    def elementwise(self, node: NodeProto) -> bool:
        """Rewrite an element-wise node that reads blocks (its other tensor inputs, of the same
        shape, are blocked too: one SpaceToDepth is cheaper than the DepthToSpace it saves)."""
        tensors = [i for i in node.input if i and i not in self.weights]
        blocked = [i for i in tensors if i in self.produced_blocked]
        if not blocked or any(self.shapes.get(i) != self.shapes.get(blocked[0]) for i in tensors):
            return False
        channels = self.shapes[tensors[0]][1]
        weights = {n: numpy_helper.to_array(self.weights[n]) for n in node.input if n in self.weights}
        constants = {n: blocked_constant(value, channels) for n, value in weights.items()}
        if any(value is None for value in constants.values()):
            return False  # decided before anything is added to the graph
        inputs = []
        for name in node.input:
            if name in constants:
                value = constants[name]
                inputs.append(self.constant(name, value) if value.size > 1 else name)
            else:
                inputs.append(self.to_blocks(name) if name else name)  # "" = an omitted input
        copy = NodeProto()
        copy.CopyFrom(node)
        del copy.input[:], copy.output[:]
        copy.input.extend(inputs)
        copy.output.append(self._blocked_output(node.output[0]))
        copy.name = f"{node.name}__s2d"
        self.nodes.append(copy)
        return True

    def back(self, name: str) -> None:
        """Make the original layout of a blocked-only tensor exist again, under its own name."""
        if name in self.produced_blocked:
            self.produced_blocked.discard(name)
            self.add("DepthToSpace", [self.blocked[name]], name, f"{name}__d2s", blocksize=BLOCK, mode="DCR")

    def run(self) -> None:
        for node in self.model.graph.node:
            if self.eligible(node) or self.reads_blocks_strided(node):
                self.conv(node)
            elif node.op_type not in _ELEMENTWISE or not self.elementwise(node):
                for name in node.input:
                    self.back(name)
                self.nodes.append(node)
        for output in self.model.graph.output:
            self.back(output.name)


def space_to_depth(model: ModelProto, min_channels: int = 16) -> tuple[ModelProto, int]:
    """A copy of `model` where stride-1 convolutions with fewer than `min_channels` outputs
    (and the element-wise ops between them) run on 2x2 pixel blocks, and the count of
    convolutions rewritten; same outputs up to float summation order."""
    inferred = onnx.shape_inference.infer_shapes(model)
    work = _Pass(ModelProto(), min_channels)
    work.model.CopyFrom(model)
    for info in (*inferred.graph.input, *inferred.graph.value_info):
        dims = info.type.tensor_type.shape.dim
        work.shapes[info.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    work.weights = {t.name: t for t in model.graph.initializer}
    work.run()
    if not work.relaid:
        return work.model, 0
    del work.model.graph.node[:]
    work.model.graph.node.extend(work.nodes)
    work.model.graph.initializer.extend(work.new_weights)
    del work.model.graph.value_info[:]  # stale for the renamed tensors; onnxruntime infers them
    _drop_unused_initializers(work.model)
    onnx.checker.check_model(work.model)
    return work.model, work.relaid


def _drop_unused_initializers(model: ModelProto) -> None:
    used = {name for node in model.graph.node for name in node.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
