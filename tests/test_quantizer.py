"""Properties of the quantization primitives: grids, clipping, per-channel scales, STE gradients."""

from __future__ import annotations

import pytest
import torch

from lwcompress.compress import CompressedLayer, CompressorConfig
from lwcompress.compress.grids import weight_params
from lwcompress.compress.quantizer import affine_params, fake_quant, qrange
from lwcompress.errors import UserError


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_number_of_levels(bits: int, symmetric: bool) -> None:
    w = torch.randn(4, 3, 9, 9)
    scale, zp = weight_params(w, bits, symmetric)
    q = fake_quant(w, scale, zp, *qrange(bits, symmetric))
    for c in range(4):
        levels = torch.unique(q[c]).numel()
        assert levels <= (2**bits - 1 if symmetric else 2**bits)
        assert levels >= min(2**bits // 2, 40)  # a 243-value Gaussian channel uses a good part of the grid
    # Values lie on the channel's grid.
    codes = q / scale + zp
    assert torch.allclose(codes, codes.round(), atol=1e-3)


def test_minmax_grid_covers_each_channel_without_clipping() -> None:
    w = torch.rand(8, 16) * 2 - 1
    w[:, 0], w[:, 1] = 1.0, -1.0
    w = w * torch.arange(1, 9).float()[:, None]  # channel c spans exactly [-(c+1), c+1]
    for symmetric in (True, False):
        scale, zp = weight_params(w, 4, symmetric)
        assert scale.shape == (8, 1)
        assert torch.all(scale[1:] > scale[:-1])  # per-channel, growing with the channel's range
        q = fake_quant(w, scale, zp, *qrange(4, symmetric))
        assert (q - w).abs().max() <= scale.max() / 2 + 1e-5  # rounding error only: nothing clipped
        assert torch.allclose(q.amax(1), w.amax(1), atol=1e-5) or not symmetric


def test_asymmetric_grid_keeps_zero_exact() -> None:
    w = torch.rand(3, 10) + 0.5  # all positive: the grid is stretched to include 0
    scale, zp = weight_params(w, 3, symmetric=False)
    q = fake_quant(torch.zeros(3, 10), scale, zp, *qrange(3, False))
    assert torch.all(q == 0)


def test_clipping_outside_range() -> None:
    scale, zp = affine_params(torch.tensor(0.0), torch.tensor(6.0), 4, symmetric=False)
    x = torch.tensor([-3.0, 0.0, 3.0, 6.0, 100.0])
    q = fake_quant(x, scale, zp, *qrange(4, False))
    assert q[0] == 0 and q[-1] == pytest.approx(6.0) and q[3] == pytest.approx(6.0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_activation_evaluation_path_is_torchs_fused_kernel(layout: torch.memory_format) -> None:
    """Without autograd a per-tensor grid takes an in-place path: it must give exactly the values of torch's fused
    kernel (which earlier runs used), in either memory layout."""
    x = (torch.randn(64, 8, 20, 20) * 30).contiguous(memory_format=layout)
    scale, zp = affine_params(torch.tensor(-20.0), torch.tensor(45.0), 4, False)
    with torch.no_grad():
        fast = fake_quant(x, scale, zp, *qrange(4, False))
    assert torch.equal(fast, torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), *qrange(4, False)))
    assert fast.is_contiguous(memory_format=layout)


def test_ste_gradient_is_one_inside_and_zero_where_clipped() -> None:
    scale, zp = affine_params(torch.tensor(0.0), torch.tensor(1.0), 4, symmetric=False)
    x = torch.tensor([-0.5, 0.13, 0.5, 0.77, 1.5], requires_grad=True)
    fake_quant(x, scale, zp, *qrange(4, False)).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_mse_scale_has_lower_weight_error_than_minmax() -> None:
    w = torch.randn(16, 64)
    w[:, 0] = 8.0  # an outlier per channel: min-max wastes the grid on it
    errs = {}
    for method in ("minmax", "mse"):
        s, z = weight_params(w, 3, True, method)
        errs[method] = (fake_quant(w, s, z, *qrange(3, True)) - w).pow(2).sum()
    assert errs["mse"] < errs["minmax"]


def test_quant_layer_codes_round_trip() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    q = CompressedLayer(conv, 4, symmetric=False, abits=8, input_range=(0.0, 4.0))
    codes = q.codes()
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 15
    before = q.quantized_weight().detach().clone()
    q.load_codes(codes)
    assert torch.allclose(q.quantized_weight(), before, atol=1e-6)
    x = torch.rand(2, 3, 8, 8) * 4
    assert q(x).shape == (2, 4, 6, 6)


def bits(cfg: CompressorConfig, name: str = "conv", first: bool = False, last: bool = False) -> tuple:
    setting = cfg.setting_for(name, first, last)
    return setting.wbits, setting.abits


def test_bit_policy_first_and_last_layer() -> None:
    cfg = CompressorConfig(wbits=4, abits=4)
    assert bits(cfg, first=True) == (8, 8)
    assert bits(cfg) == (4, 4)
    assert bits(cfg, last=True) == (8, 8)
    cfg = CompressorConfig(wbits=3, abits=None, first_layer_wbits=None, last_layer_wbits=None)
    assert bits(cfg, first=True) == (3, None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wbits": 0}, "wbits=0: must be a number in 2..8"),
        ({"wbits": 9}, "wbits=9"),
        ({"abits": 1}, "abits=1"),
        ({"scale": "median"}, "scale=median: unknown weight grid 'median'; choose one of: minmax"),
        ({"wbits": "abc"}, "wbits='abc'"),
    ],
)
def test_bad_quant_config_is_one_line_error(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")) as e:
        CompressorConfig(**kwargs)
    assert "\n" not in str(e.value)
