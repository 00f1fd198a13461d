"""How much error reaches each layer of the round-to-nearest network, on real images and in the propagated synthetic
domain (the network sequential runs train in)? Prints, per layer, the input error MSE / Var of the compressed
network against the FP one, both ways, and the layer's own input-quantization error. If the synthetic domain
overstates what reaches the late layers, sequential runs there learn to undo an error real images do not have.

python experiments/probes/domain_error.py --model mobilenetv2_small --wbits 4 --abits 4
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

import lwcompress
from lwcompress.api import compress
from lwcompress.compress import CompressorConfig
from lwcompress.data import DataConfig, build_data
from lwcompress.generate import GenerationContext, capture_inputs, generator_config, generator_domain
from lwcompress.graph.fold import fold_bn
from lwcompress.layerwise.sequential import channel_ratio, into_domain
from lwcompress.models import ModelConfig, build_model


def relative(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).pow(2).mean() / ref.var())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_small")
    parser.add_argument("--wbits", type=int, default=4)
    parser.add_argument("--abits", type=int, default=4)
    parser.add_argument("--every", type=int, default=3, help="print every n-th layer")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dm = build_data(DataConfig())
    dm.setup("fit")
    weights = Path(lwcompress.__file__).parent / "checkpoints" / "fashion_mnist" / f"{args.model}.pt"
    model, _ = build_model(ModelConfig(args.model, weights=str(weights)), 10, 1)
    model.eval()
    rtn = compress(model, CompressorConfig("rtn", wbits=args.wbits, abits=args.abits), dm.normalization, (1, 28, 28))
    quants = rtn.compressed_layers()
    names = list(quants)

    real = dm.train_images(256)
    fp_real = capture_inputs(fold_bn(model), names, real, batch_stat_bn=False)
    q_real = capture_inputs(rtn.model, names, real, batch_stat_bn=False)

    domain, noise = generator_domain(model, generator_config("propagated"), GenerationContext((1, 28, 28), 8))
    fp_syn = fold_bn(domain)
    q_syn = copy.deepcopy(fp_syn)
    for k, (name, q) in enumerate(quants.items()):
        ratio = channel_ratio(fp_syn.get_submodule(name).weight, q.layer.weight)
        q_syn.set_submodule(name, into_domain(q, fp_syn.get_submodule(name), ratio, float_input=k == 0))
    fp_noise = capture_inputs(fp_syn, names, noise, batch_stat_bn=False)
    q_noise = capture_inputs(q_syn, names, noise, batch_stat_bn=False)

    print(f"{args.model} RTN W{args.wbits}A{args.abits}: input error reaching each layer (MSE / Var)")
    print(f"{'layer':24s} {'real':>8s} {'synthetic':>10s} {'own A-quant real':>17s} {'synthetic':>10s}")
    for name in names[1 :: args.every] + ([names[-1]] if (len(names) - 2) % args.every else []):
        q = quants[name]
        own_real = relative(q.quantize_input(fp_real[name]), fp_real[name])
        own_syn = relative(q.quantize_input(fp_noise[name]), fp_noise[name])
        print(f"{name:24s} {relative(q_real[name], fp_real[name]):8.4f} {relative(q_noise[name], fp_noise[name]):10.4f}"
              f" {own_real:17.4f} {own_syn:10.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
