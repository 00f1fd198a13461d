"""Pruning: mask allocation and N:M patterns, true zeros through quantization, saving, layer-wise retraining."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from lwcompress.api import compress, load_compressed
from lwcompress.compress import CompressedLayer, CompressorConfig
from lwcompress.compress.prune import keep_largest, magnitude_masks, n_m_mask
from lwcompress.errors import UserError
from lwcompress.generate import DistilledConfig
from lwcompress.layerwise import LayerwiseConfig
from lwcompress.layerwise.refit import refit_survivors
from lwcompress.models import MODELS

from .test_compress import NORM, calibrated, images


def weights() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a": torch.randn(8, 4, 3, 3, generator=g), "b": 3 * torch.randn(16, 8, 3, 3, generator=g),
            "c": torch.randn(10, 16, generator=g)}  # fmt: skip


def test_uniform_masks_prune_each_layer_to_its_target_by_magnitude() -> None:
    w = weights()
    masks = magnitude_masks(w, {"a": 0.5, "b": 0.75, "c": 0.0}, "uniform", "unstructured")
    assert masks["c"] is None  # nothing to prune: the layer stays dense
    for name, target in (("a", 0.5), ("b", 0.75)):
        m = masks[name]
        assert abs(1 - m.float().mean().item() - target) < 1 / w[name].numel()
        assert w[name][m].abs().min() >= w[name][~m].abs().max()


def test_global_masks_share_one_threshold_and_reach_the_total() -> None:
    w = weights()
    masks = magnitude_masks(w, {"a": 0.6, "b": 0.6, "c": 0.6}, "global", "unstructured")
    kept = torch.cat([w[n][masks[n]].abs() for n in w])
    pruned = torch.cat([w[n][~masks[n]].abs() for n in w])
    assert kept.min() >= pruned.max()
    assert abs(len(pruned) / (len(kept) + len(pruned)) - 0.6) < 1e-3
    # the large-weight layer keeps more than its share, the others less
    assert masks["b"].float().mean() > 0.4 > masks["a"].float().mean()


def test_two_four_keeps_two_of_every_four_input_channels() -> None:
    w = torch.randn(6, 8, 3, 3)
    m = n_m_mask(w, 2, 4)
    groups = m.movedim(1, -1).reshape(-1, 4)
    assert (groups.sum(1) == 2).all()
    kept = w.abs().movedim(1, -1).reshape(-1, 4)
    assert (kept.where(groups, torch.inf).min(1).values >= kept.where(~groups, -torch.inf).max(1).values).all()
    assert n_m_mask(torch.randn(6, 1, 3, 3), 2, 4) is None  # depthwise / 1-channel layers cannot carry the pattern


@pytest.mark.parametrize("wbits", [None, 4])
def test_pruned_weights_are_true_zeros_saved_with_their_masks(tmp_path: Path, wbits: int | None) -> None:
    model = calibrated("mobilenetv2_tiny")
    cfg = CompressorConfig(name="prune_magnitude", wbits=wbits, abits=4, sparsity=0.6)
    result = compress(model, cfg, NORM, (1, 28, 28))
    layers = result.compressed_layers()
    assert all(q.mask is not None for q in layers.values())
    for q in layers.values():
        assert (q.quantized_weight()[~q.mask] == 0).all() and (q.layer.weight[~q.mask] == 0).all()
    assert abs(result.sparsity() - 0.6) < 0.01
    path = result.save(tmp_path / "c.pt")
    packing = torch.load(path, weights_only=True)["meta"]["packing"]
    assert [name for name, _ in packing["masks"]] == list(layers)  # every mask saved (1 bit per weight)
    # only the survivors are stored: codes at their width, float weights as floats
    assert sum(count for *_, count in packing["codes"]) == sum(int(q.mask.sum()) for q in layers.values() if q.wbits)
    reloaded = load_compressed(path, MODELS.get("mobilenetv2_tiny")(10, 1))
    x = images(4)
    assert torch.allclose(reloaded.model(x), result.model(x), atol=1e-5)
    assert reloaded.sparsity() == result.sparsity()
    for name, q in reloaded.compressed_layers().items():  # pruned weights reload as exact zeros
        assert torch.equal(q.mask, layers[name].mask) and not q.quantized_weight()[~q.mask].any()
        assert not q.layer.weight[~q.mask].any()
    # Storage: the survivors at their width plus a 1-bit mask per weight, instead of every weight at its width.
    dense = compress(model, CompressorConfig("rtn", wbits=wbits, abits=4), NORM, (1, 28, 28))
    saved = sum((q.wbits or 32) * int((~q.mask).sum()) - q.mask.numel() for q in layers.values())
    assert result.size_bits() == dense.size_bits() - saved


def test_first_layer_can_stay_dense_and_n_m_fixes_the_sparsity() -> None:
    model = calibrated("resnet8_tiny")
    cfg = CompressorConfig(name="prune_magnitude", wbits=None, abits=None, sparsity=0.5, pattern="2:4",
                           first_layer_sparsity=0.0)  # fmt: skip
    result = compress(model, cfg, NORM, (1, 28, 28))
    for rec, q in zip(result.layers, result.compressed_layers().values(), strict=True):
        if q.mask is None:  # the image layer (1 input channel) and the dense first layer
            assert rec.sparsity == 0
        else:
            assert rec.sparsity == 0.5
            assert (q.mask.movedim(1, -1).reshape(-1, 4).sum(1) == 2).all()


@pytest.mark.parametrize(("mode", "wbits"), [("sequential", None), ("independent", None), ("sequential", 4)])
def test_layerwise_pruning_lowers_the_error_and_keeps_the_mask(mode: str, wbits: int | None) -> None:
    """Prune alone (least-squares refit, then steps), and prune then quantize in the same layer runs."""
    torch.manual_seed(0)  # a fixed calibrated model whatever ran before
    model = calibrated("resnet8_tiny")
    x = images(64)
    with torch.no_grad():
        target = model(x)
    cfg = CompressorConfig(name="prune_magnitude", wbits=wbits, abits=None, sparsity=0.7)
    magnitude = compress(model, cfg, NORM, (1, 28, 28))
    gen, lw = DistilledConfig(num_images=64), LayerwiseConfig(steps=60, mode=mode)
    learned = compress(model, dataclasses.replace(cfg, name="prune"), NORM, (1, 28, 28), generator=gen, layerwise=lw)
    trained = [r for r in learned.results if r.wall_s > 0]
    assert len(trained) == len(learned.results) - 1  # all but the image-fed layer
    # Each layer's own problem (held-out inputs): better than its magnitude-pruned start, clearly so on average.
    assert all(r.error < r.rtn_error for r in trained)
    assert sum(r.error / r.rtn_error for r in trained) / len(trained) < 0.85
    if mode == "sequential":  # independent layers fit FP inputs they will not see; only sequential ones add up
        with torch.no_grad():
            err = {n: (m.model(x) - target).pow(2).mean().item() for n, m in (("mag", magnitude), ("lw", learned))}
        assert err["lw"] < 0.7 * err["mag"]
    for name, q in learned.compressed_layers().items():
        assert torch.equal(q.mask, magnitude.compressed_layers()[name].mask)
        assert (q.layer.weight[~q.mask] == 0).all() and (q.quantized_weight()[~q.mask] == 0).all()
    changed = [not torch.equal(q.layer.weight, magnitude.compressed_layers()[n].layer.weight)
               for n, q in learned.compressed_layers().items()]  # fmt: skip
    assert sum(changed) >= len(changed) - 1  # every layer but the image-fed one was retrained


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"pattern": "2:4", "sparsity": 0.7}, "pattern=2:4 fixes the sparsity at 0.5"),
        ({"pattern": "4:2", "sparsity": 0.5}, "pattern='4:2': pattern must be 'unstructured' or 'N:M'"),
        ({"wbits": None, "abits": None}, "nothing to compress"),
        ({"sparsity": 1.0}, "sparsity=1.0: must be a number in 0.0..0.99"),
    ],
)
def test_bad_pruning_configs_fail_in_one_line(kwargs: dict, expected: str) -> None:
    with pytest.raises(UserError) as e:
        CompressorConfig(name="prune", **kwargs)
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("groups", [1, 4])
def test_refit_is_the_least_squares_fit_of_the_survivors(groups: int) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=groups)
    q = CompressedLayer(copy.deepcopy(conv), None, False, mask=keep_largest(conv.weight, 0.6))
    x = torch.randn(64, 8, 5, 5) + 0.5
    with torch.no_grad():
        target = conv(x)
        before = (q(x) - target).pow(2).mean()
        refit_survivors(q, x, target, damping=0.0)
        after = (q(x) - target).pow(2).mean()
    assert after < before and (q.layer.weight[~q.mask] == 0).all()
    # Output channel 0 against a direct least-squares solve on its kept inputs.
    cols = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 72)[:, : 72 // groups]
    keep = q.mask[0].flatten().nonzero().squeeze(1)
    y = target[:, 0].reshape(-1) - conv.bias[0]
    expected = torch.linalg.lstsq(cols[:, keep].double(), y.double().unsqueeze(1)).solution.squeeze(1)
    assert torch.allclose(q.layer.weight[0].flatten()[keep].double(), expected, atol=1e-4)
