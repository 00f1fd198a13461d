"""A (compressed) network's fx graph as an ONNX graph that stock onnxruntime runs, without custom ops.

Quantized weights are integer initializers behind a per-channel DequantizeLinear (axis 0): int4/uint4 (two codes
per byte) for widths up to 4 bit when `int4` is on, int8/uint8 otherwise; float weights (`wbits=None`) stay float32.
Every quantized layer input gets its own per-tensor QuantizeLinear -> DequantizeLinear pair (uint8) on the exact grid
the PyTorch layer uses; below 8 bit, a Clip to the k-bit grid's ends [(0 - z) s, (2^k - 1 - z) s] comes first, with
the same scale s and zero point z. The two are the same function: round(x / s) + z saturated to [0, 2^k - 1] equals
round(clip(x) / s) + z, since rounding is monotone and the clip bounds map onto the integer ends of the range.
(uint4 QDQ would say A4 without the Clip, but onnxruntime 1.32 cannot load it behind a Clip such as ReLU6: its
Clip/QuantizeLinear fusion rejects a uint4 zero point at session start.) Biases: see `to_onnx`.

Only the operations the supported networks use are translated (`_MODULES`, `_FUNCTIONS`, `_METHODS`); anything
else is an `ExportError` naming the node, so an export never silently drops or approximates an operation.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import fx, nn

from lwcompress.compress import CompressedLayer, TensorQuant
from lwcompress.compress.config import matches
from lwcompress.errors import UserError
from lwcompress.graph.trace import trace

OPSET = 21  # the first opset with int4/uint4 QuantizeLinear / DequantizeLinear
IR_VERSION = 10


class ExportError(UserError):
    """The network holds something the ONNX export cannot express exactly."""


class _Builder:
    """Collects nodes and initializers under unique names."""

    def __init__(self, int4: bool, int32_bias: bool, keep_float: frozenset[str] = frozenset()) -> None:
        self.int4, self.int32_bias, self.keep_float = int4, int32_bias, keep_float
        self.nodes: list[onnx.NodeProto] = []
        self.quantized: dict[tuple[str, float, int, int], str] = {}  # (tensor, grid) -> its DequantizeLinear output
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def name(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _f32(t: torch.Tensor | float) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float32)


def _qdq(b: _Builder, x: str, name: str, scale: float, zero_point: int, bits: int) -> str:
    """`x` on a per-tensor uint8 grid (QDQ), behind a Clip to the k-bit grid's ends below 8 bit. Made once per tensor
    and grid: every reader of a tensor on one grid reads the same DequantizeLinear, as onnxruntime's integer kernels
    need (one QuantizeLinear after the kernel that produces it)."""
    key = (x, scale, zero_point, bits)
    if key not in b.quantized:
        if bits != 8:
            lo, hi = (0 - zero_point) * scale, (2**bits - 1 - zero_point) * scale
            bounds = [b.const(f"{name}.lo", _f32(lo)), b.const(f"{name}.hi", _f32(hi))]
            x = b.op("Clip", [x, *bounds], f"{name}.clip")
        s = b.const(f"{name}.scale", _f32(scale))
        z = b.const(f"{name}.zero_point", np.asarray(zero_point, dtype=np.uint8))
        codes = b.op("QuantizeLinear", [x, s, z], f"{name}.q")
        b.quantized[key] = b.op("DequantizeLinear", [codes, s, z], f"{name}.dq")
    return b.quantized[key]


def _input_qdq(b: _Builder, x: str, name: str, q: CompressedLayer) -> str:
    """The layer's input quantization."""
    return _qdq(b, x, f"{name}.input", float(q.a_scale), int(q.a_zero_point), q.abits)


def _tensor_qdq(b: _Builder, name: str, m: TensorQuant, x: str) -> str:
    """A tensor quantized between layers (`compressor.integer_graph`)."""
    return _qdq(b, x, name, float(m.scale), int(m.zero_point), m.bits)


def weight_storage(bits: int | None, symmetric: bool, int4: bool) -> str:
    """The ONNX element type a layer's weight codes are stored as."""
    if bits is None:
        return "float32"
    small = bits <= 4 and int4
    return ("int4" if small else "int8") if symmetric else ("uint4" if small else "uint8")


_NUMPY = {"int4": ml_dtypes.int4, "uint4": ml_dtypes.uint4, "int8": np.int8, "uint8": np.uint8}


def _quantized_weight(b: _Builder, name: str, q: CompressedLayer) -> str:
    """Integer codes -> DequantizeLinear per output channel (float weights: the masked float32 weight)."""
    if q.wbits is None:
        return b.const(f"{name}.weight", _f32(q.quantized_weight()))
    dtype = _NUMPY[weight_storage(q.wbits, q.symmetric, b.int4)]
    codes = b.const(f"{name}.weight_codes", q.codes().numpy().astype(dtype))
    scale = b.const(f"{name}.weight_scale", _f32(q.w_scale.flatten()))
    zero_point = b.const(f"{name}.weight_zero_point", q.w_zero_point.flatten().numpy().astype(dtype))
    return b.op("DequantizeLinear", [codes, scale, zero_point], f"{name}.weight", axis=0)


def _float_bias(b: _Builder, name: str, layer: nn.Conv2d | nn.Linear) -> str | None:
    return None if layer.bias is None else b.const(f"{name}.bias", _f32(layer.bias))


def _layer(b: _Builder, name: str, layer: nn.Conv2d | nn.Linear, x: str, weight: str, bias: str | None,
           add_bias: torch.Tensor | None = None) -> str:  # fmt: skip
    """Conv / Gemm with `bias` as its third input, or with the float bias `add_bias` in a separate Add after it."""
    inputs = [x, weight] + ([bias] if bias else [])
    if isinstance(layer, nn.Linear):
        out = b.op("Gemm", inputs, name, transB=1)
    else:
        if layer.padding_mode != "zeros":
            raise ExportError(f"layer {name}: padding_mode='{layer.padding_mode}' has no ONNX Conv equivalent")
        attrs: dict[str, Any] = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
                                 "dilations": list(layer.dilation), "group": layer.groups}  # fmt: skip
        if layer.padding == "same":
            attrs["auto_pad"] = "SAME_UPPER"  # PyTorch puts the odd extra pixel at the end, as SAME_UPPER does
        else:
            pad = [0, 0] if layer.padding == "valid" else list(layer.padding)
            attrs["pads"] = pad + pad
        out = b.op("Conv", inputs, name, **attrs)
    if add_bias is None:
        return out
    shape = [1, -1] + [1] * (layer.weight.ndim - 2)
    return b.op("Add", [out, b.const(f"{name}.bias", _f32(add_bias).reshape(shape))], f"{name}.add_bias")


def _bias_grid(q: CompressedLayer) -> tuple[np.ndarray, np.ndarray]:
    """(int32 codes, scale per output channel) of the layer's bias on the input-scale x weight-scale grid."""
    scale = np.float32(float(q.a_scale)) * _f32(q.w_scale.flatten())
    return np.round(_f32(q.layer.bias) / scale).astype(np.int32), scale


def _int32_grid(q: CompressedLayer) -> np.ndarray:
    """The int32 bias's values in float32, exactly as DequantizeLinear gives them."""
    codes, scale = _bias_grid(q)
    return codes.astype(np.float32) * scale


def _int32_bias(b: _Builder, name: str, q: CompressedLayer) -> str | None:
    """The bias as int32 codes on the input-scale x weight-scale grid: the form integer kernels take."""
    if q.layer.bias is None:
        return None
    codes, scale = _bias_grid(q)
    inputs = [b.const(f"{name}.bias_codes", codes), b.const(f"{name}.bias_scale", scale),
              b.const(f"{name}.bias_zero_point", np.zeros_like(codes))]  # fmt: skip
    return b.op("DequantizeLinear", inputs, f"{name}.bias", axis=0)


def _compressed(b: _Builder, name: str, q: CompressedLayer, x: str) -> str:
    """A quantized layer; where input and weight are both quantized, its bias is int32 codes (`b.int32_bias`) or a
    separate float Add (see `to_onnx`); a layer kept in float (`b.keep_float`) adds the same int32-grid values in
    float, so onnxruntime runs it as dequantize -> float kernel and the result is unchanged."""
    if q.rounding is not None:
        raise ExportError(f"layer {name} is still learning its rounding: harden() it before exporting")
    x = _input_qdq(b, x, name, q) if q.abits is not None else x
    weight = _quantized_weight(b, name, q)
    if q.abits is None or q.wbits is None:
        return _layer(b, name, q.layer, x, weight, _float_bias(b, name, q.layer))
    if name in b.keep_float:  # the Add after the kernel keeps onnxruntime from fusing it into an integer one
        if q.layer.bias is None:
            bias = np.zeros(q.layer.weight.shape[0], np.float32)
        else:
            bias = _int32_grid(q) if b.int32_bias else q.layer.bias
        return _layer(b, name, q.layer, x, weight, None, add_bias=bias)
    if b.int32_bias:
        return _layer(b, name, q.layer, x, weight, _int32_bias(b, name, q))
    return _layer(b, name, q.layer, x, weight, None, add_bias=q.layer.bias)


def _clip(b: _Builder, x: str, name: str, lo: float, hi: float) -> str:
    return b.op("Clip", [x, b.const(f"{name}.min", _f32(lo)), b.const(f"{name}.max", _f32(hi))], name)


def _global_pool(b: _Builder, x: str, name: str, size: Any) -> str:
    if size not in (1, (1, 1), [1, 1]):
        raise ExportError(f"node {name}: adaptive average pooling to {size} (only to 1x1) is not exported")
    return b.op("GlobalAveragePool", [x], name)


def _flatten(b: _Builder, x: str, name: str, start: int = 0, end: int = -1) -> str:
    if start != 1 or end != -1:
        raise ExportError(f"node {name}: flatten({start}, {end}) is not exported (only flatten from dim 1)")
    return b.op("Flatten", [x], name, axis=1)


def _pool(b: _Builder, name: str, m: nn.MaxPool2d | nn.AvgPool2d, x: str) -> str:
    pair = nn.modules.utils._pair
    attrs: dict[str, Any] = {
        "kernel_shape": list(pair(m.kernel_size)),
        "strides": list(pair(m.stride or m.kernel_size)),
        "pads": list(pair(m.padding)) * 2,
        "ceil_mode": int(m.ceil_mode),
    }
    if isinstance(m, nn.MaxPool2d):
        return b.op("MaxPool", [x], name, dilations=list(pair(m.dilation)), **attrs)
    if m.divisor_override is not None:
        raise ExportError(f"layer {name}: AvgPool2d(divisor_override=...) has no ONNX equivalent")
    return b.op("AveragePool", [x], name, count_include_pad=int(m.count_include_pad), **attrs)


def _batch_norm(b: _Builder, name: str, m: nn.BatchNorm2d, x: str) -> str:
    """A BatchNorm that folding left in place (not behind a conv), with its running statistics."""
    if m.running_mean is None:
        raise ExportError(f"layer {name}: BatchNorm without running statistics normalizes by the batch")
    ones, zeros = torch.ones_like(m.running_mean), torch.zeros_like(m.running_mean)
    inputs = [x] + [
        b.const(f"{name}.{k}", _f32(v))
        for k, v in (
            ("weight", m.weight if m.weight is not None else ones),
            ("bias", m.bias if m.bias is not None else zeros),
            ("running_mean", m.running_mean),
            ("running_var", m.running_var),
        )
    ]
    return b.op("BatchNormalization", inputs, name, epsilon=float(m.eps))


# Each handler: (builder, name, module or None, *resolved fx args) -> output name.
_MODULES: dict[type[nn.Module], Callable[..., str]] = {
    CompressedLayer: _compressed,
    TensorQuant: _tensor_qdq,
    nn.Conv2d: lambda b, n, m, x: _layer(b, n, m, x, b.const(f"{n}.weight", _f32(m.weight)), _float_bias(b, n, m)),
    nn.Linear: lambda b, n, m, x: _layer(b, n, m, x, b.const(f"{n}.weight", _f32(m.weight)), _float_bias(b, n, m)),
    nn.ReLU: lambda b, n, m, x: b.op("Relu", [x], n),
    nn.ReLU6: lambda b, n, m, x: _clip(b, x, n, 0.0, 6.0),
    nn.Hardtanh: lambda b, n, m, x: _clip(b, x, n, m.min_val, m.max_val),
    nn.MaxPool2d: _pool,
    nn.AvgPool2d: _pool,
    nn.AdaptiveAvgPool2d: lambda b, n, m, x: _global_pool(b, x, n, m.output_size),
    nn.Flatten: lambda b, n, m, x: _flatten(b, x, n, m.start_dim, m.end_dim),
    nn.Dropout: lambda b, n, m, x: x,
    nn.Identity: lambda b, n, m, x: x,
    nn.BatchNorm2d: _batch_norm,
}


def _binary(op_type: str) -> Callable[..., str]:
    def handle(b: _Builder, name: str, a: Any, c: Any) -> str:
        return b.op(op_type, [_operand(b, name, a), _operand(b, name, c)], name)

    return handle


def _operand(b: _Builder, name: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return b.const(f"{name}.constant", _f32(v))
    raise ExportError(f"node {name}: operand {v!r} is not exported")


def _mean(b: _Builder, name: str, x: str, dim: Any, keepdim: bool = False) -> str:
    axes = b.const(f"{name}.axes", np.asarray(dim if isinstance(dim, list | tuple) else [dim], dtype=np.int64))
    return b.op("ReduceMean", [x, axes], name, keepdims=int(keepdim))


_FUNCTIONS: dict[Callable, Callable[..., str]] = {
    operator.add: _binary("Add"),
    torch.add: _binary("Add"),
    operator.mul: _binary("Mul"),
    torch.mul: _binary("Mul"),
    torch.flatten: lambda b, n, x, start_dim=0, end_dim=-1: _flatten(b, x, n, start_dim, end_dim),
    torch.relu: lambda b, n, x: b.op("Relu", [x], n),
    F.relu: lambda b, n, x, inplace=False: b.op("Relu", [x], n),
    F.relu6: lambda b, n, x, inplace=False: _clip(b, x, n, 0.0, 6.0),
    F.adaptive_avg_pool2d: lambda b, n, x, output_size: _global_pool(b, x, n, output_size),
    torch.mean: lambda b, n, x, dim, keepdim=False: _mean(b, n, x, dim, keepdim),
    torch.cat: lambda b, n, tensors, dim=0: b.op("Concat", list(tensors), n, axis=dim),
}

_METHODS: dict[str, Callable[..., str]] = {
    "relu": lambda b, n, x: b.op("Relu", [x], n),
    "flatten": lambda b, n, x, start_dim=0, end_dim=-1: _flatten(b, x, n, start_dim, end_dim),
    "mean": lambda b, n, x, dim, keepdim=False: _mean(b, n, x, dim, keepdim),
    "add": _binary("Add"),
    "mul": _binary("Mul"),
}


def _module_handler(m: nn.Module) -> Callable[..., str] | None:
    for cls in type(m).__mro__:
        if cls in _MODULES:
            return _MODULES[cls]
    return None


def _resolve(arg: Any, env: dict[fx.Node, str]) -> Any:
    if isinstance(arg, fx.Node):
        return env[arg]
    if isinstance(arg, list | tuple):
        return type(arg)(_resolve(a, env) for a in arg)
    return arg


def _describe(node: fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target))


DEPTHWISE = "depthwise"


def kept_float(model: nn.Module, rules: Sequence[str]) -> frozenset[str]:
    """The quantized layers `rules` keep out of the integer kernels: layer-name patterns (fnmatch, or re:<regex>) and
    the word "depthwise" (every convolution with one input channel per group, where onnxruntime's integer kernel
    is slower than its float one with uint8 weight codes: 112 of 116 ms of mobilenet_v2 at 224; with int8 codes it
    is faster, experiments/results/latency_224.md). A rule that keeps no layer is an ExportError."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, CompressedLayer)}
    kept: set[str] = set()
    for rule in rules:
        if rule == DEPTHWISE:
            hits = {n for n, q in layers.items() if isinstance(q.layer, nn.Conv2d) and q.layer.groups > 1
                    and q.layer.groups == q.layer.in_channels}  # fmt: skip
        else:
            hits = {n for n in layers if matches(rule, n)}
        if not hits:
            raise ExportError(f"--keep-float {rule}: no quantized layer matches it (layer-name patterns, re:<regex>, "
                              f"or {DEPTHWISE})")  # fmt: skip
        kept |= hits
    return frozenset(kept)


def _format(int32_bias: bool, kept: frozenset[str]) -> dict[str, str]:
    """How the file stores what, for whoever reads it without this code."""
    kept_note = {"float_kernel_layers": ", ".join(sorted(kept))} if kept else {}
    return kept_note | {
        "weights": "integer codes x per-channel scale (DequantizeLinear, axis 0); int4/uint4 hold two codes per byte",
        "activations": "per-tensor uint8 QuantizeLinear/DequantizeLinear before each quantized layer; below 8 bit a "
        "Clip to the k-bit grid's ends comes first (the same function as the k-bit grid)",
        "biases": "int32 codes x (input scale x weight scale) through DequantizeLinear"
        + ("; float_kernel_layers add the same values in float, after the layer" if kept else "")
        if int32_bias
        else "float32; where input and weight are quantized, a separate Add after the layer",
    }


def to_onnx(
    model: nn.Module, example: torch.Tensor, metadata: dict[str, str], int4: bool = True, bias: str = "float",
    keep_float: Sequence[str] = (),
) -> onnx.ModelProto:  # fmt: skip
    """Translate `model` (eval mode, fx-traceable; a compressed model is already a GraphModule) into a checked ONNX
    model with input "input" (N, C, H, W) and output "logits"; `metadata` goes into its metadata_props.

    `bias` of layers whose input and weight are both quantized: "float" (exact, in a separate Add: onnxruntime would
    round a float bias input of such a layer to the input-scale x weight-scale grid itself) or "int32" (codes on
    that grid: the form onnxruntime fuses into integer kernels where the input is 8-bit and the weight codes are
    int8). Rounding of any kind flips a few later activations by a whole step: rounded biases changed 1 % of the
    top-1 decisions of resnet20 W4A4 on the test set, and the integer kernels of an int32 W8A8 export 0.14 % of
    resnet20's (both past the 0.1 % that `lwcompress-export --check` allows). With int32 biases, the layers
    `keep_float` names (`kept_float`) add the same int32-grid bias values in float instead, so onnxruntime runs
    them as float kernels on dequantized inputs and weights and computes the same function.
    """
    gm = model if isinstance(model, fx.GraphModule) else trace(model)
    if bias not in ("int32", "float"):
        raise ExportError(f"bias='{bias}': choose float or int32")
    b = _Builder(int4, bias == "int32", kept_float(gm, keep_float))
    env: dict[fx.Node, str] = {}
    input_name, output = "", None
    for node in gm.graph.nodes:
        args = [_resolve(a, env) for a in node.args]
        kwargs = {k: _resolve(v, env) for k, v in node.kwargs.items()}
        if node.op == "placeholder":
            if env:
                raise ExportError(f"the model takes several inputs ({node.name}); only one image tensor is exported")
            env[node] = input_name = b.name("input")
            continue
        if node.op == "output":
            output = args[0]
            break
        try:
            if node.op == "call_module":
                module = gm.get_submodule(node.target)
                handle = _module_handler(module)
                if handle is None:
                    raise ExportError(
                        f"layer {node.target}: {type(module).__name__} is not supported by the ONNX export"
                    )
                env[node] = handle(b, node.target, module, *args, **kwargs)
            elif node.op == "call_function" and node.target in _FUNCTIONS:
                env[node] = _FUNCTIONS[node.target](b, node.name, *args, **kwargs)
            elif node.op == "call_method" and node.target in _METHODS:
                env[node] = _METHODS[node.target](b, node.name, *args, **kwargs)
            else:
                raise ExportError(f"node {node.name}: {node.op} {_describe(node)} is not supported by the ONNX export")
        except TypeError as e:  # a supported op called with arguments it has no translation for
            raise ExportError(
                f"node {node.name}: {_describe(node)} with these arguments is not exported ({e})"
            ) from None
    if not isinstance(output, str) or output == input_name:
        raise ExportError("the model must return one logits tensor computed from its input")
    output = b.op("Identity", [output], "logits")
    with torch.no_grad():
        out_shape = ["N", *model(example).shape[1:]]
    in_shape = ["N", *example.shape[1:]]
    graph = helper.make_graph(
        b.nodes,
        type(model).__name__,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
        b.initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lwcompress")
    proto.ir_version = IR_VERSION
    helper.set_model_props(proto, {**metadata, **_format(b.int32_bias, b.keep_float)})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported graph fails onnx.checker: {str(e).splitlines()[0]}") from None
    return proto
