"""Seconds per training step (batch of 128, SGD) of a torchvision network at a given input size, in the default and in
channels-last layout, in float32 or bf16 autocast: what lwcompress-pretrain's layout, the precision each model trains in
(experiments/benchmarks/train_torchvision.sh) and the epoch times in results/train_torchvision.md rest on.

python experiments/probes/train_speed.py --arch resnet18 --size 64 --threads 1
python experiments/probes/train_speed.py --threads 2 --bf16
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision


def step_seconds(arch: str, size: int, layout: torch.memory_format, steps: int, bf16: bool) -> float:
    """The median wall time of `steps` training steps after one warm-up step (`bf16`: forward under bf16 autocast, as
    Lightning's bf16-mixed)."""
    model = torchvision.models.get_model(arch, num_classes=10).train().to(memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(128, 3, size, size).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (128,))
    times = []
    for _ in range(steps + 1):
        clock = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - clock)
    return sorted(times[1:])[steps // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast (trainer.precision=bf16-mixed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for arch in args.arch:
        layouts = (torch.contiguous_format, torch.channels_last)
        for bf16 in (False, True) if args.bf16 else (False,):
            plain, last = (step_seconds(arch, args.size, f, args.steps, bf16) for f in layouts)
            print(f"{arch} {args.size}x{args.size}, {args.threads} thread(s), {'bf16' if bf16 else 'float32'}: "
                  f"{plain:.2f} s per step, channels-last {last:.2f} s ({plain / last:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
