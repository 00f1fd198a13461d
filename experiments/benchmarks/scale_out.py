"""Scale-out measurements on this machine, one job at a time (threads x processes = the 2 cores):

1. wall time of a whole job (and of its compression) at W4A4 on both models: 1 process with 2 threads vs 2
   processes with 1 thread each, independent runs, and sequential runs with 1 or 2 segments;
2. a sequential mobilenetv2_small W4A4 run SIGKILLed halfway through its layers, then started again on its run
   dir: the time from the restart to the finished run vs a whole run, and whether the model is the same;
3. a SLURM job requeued by `scontrol requeue` in its layer runs (needs a cluster: .ci/slurm.sh): its submitit log.

    python experiments/benchmarks/scale_out.py --parts processes,resume,slurm
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

BIN = Path(sys.executable).parent
OUT = Path("logs/scale_out") / time.strftime("%Y-%m-%d_%H-%M-%S")
COMMON = ["compressor.wbits=4", "compressor.abits=4", "trainer.enable_progress_bar=false", "real_diagnostics=false",
          "eval_rtn=false"]  # fmt: skip


def start(run_dir: Path, args: list[str], *extra: str) -> subprocess.Popen:
    log = (run_dir.parent / f"{run_dir.name}.log").open("w")
    return subprocess.Popen([str(BIN / "lwcompress"), *COMMON, *args, *extra, f"hydra.run.dir={run_dir}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def timed(run_dir: Path, args: list[str], *extra: str) -> tuple[float, dict]:
    clock = time.perf_counter()
    assert start(run_dir, args, *extra).wait() == 0, f"{run_dir} failed"
    return time.perf_counter() - clock, json.loads((run_dir / "summary.json").read_text())


def codes(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "compressed.pt", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k == "packed.codes"}  # all layers' weight codes, packed


def finished_layers(run_dir: Path) -> int:
    return len([p for p in (run_dir / "layers").glob("*.json") if p.stem != "FINGERPRINT"])


def processes(counts: list[int]) -> None:
    print("| model | mode | processes x threads | job wall s | compress s | top-1 (test) |")
    print("|---|---|---|---|---|---|")
    for model in ("resnet20", "mobilenetv2_small"):
        for mode, extra in (("independent", ["layerwise.mode=independent"]), ("sequential, 1 segment", []),
                            ("sequential, 2 segments", ["layerwise.segments=2"])):  # fmt: skip
            for procs in counts:
                if procs == 2 and mode == "sequential, 1 segment":
                    continue  # one segment is one rank's work
                name = f"{model}_{mode.split(',')[0]}_{len(extra)}_{procs}p"
                wall, s = timed(OUT / name, [f"model={model}", f"trainer.devices={procs}", f"threads={2 // procs}",
                                             *extra])  # fmt: skip
                print(f"| {model} | {mode} | {procs} x {2 // procs} | {wall:.1f} | {s['compress_wall_s']:.1f} | "
                      f"{s['top1']:.2f} |", flush=True)  # fmt: skip


def resume() -> None:
    args = ["model=mobilenetv2_small", "threads=2"]
    whole_wall, whole = timed(OUT / "whole", args)
    killed = OUT / "killed"
    proc = start(killed, args)
    total = finished_layers(OUT / "whole")
    while finished_layers(killed) < total // 2:
        assert proc.poll() is None
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = finished_layers(killed)
    resumed_wall, resumed = timed(killed, args)
    same = all(torch.equal(a, b) for a, b in zip(codes(killed).values(), codes(OUT / "whole").values(), strict=True))
    print(f"\nmobilenetv2_small W4A4 sequential, threads=2: whole run {whole_wall:.1f} s (compress "
          f"{whole['compress_wall_s']:.1f} s); SIGKILL after {done} of {total} layers; restarted run "
          f"{resumed_wall:.1f} s (compress {resumed['compress_wall_s']:.1f} s); top-1 {resumed['top1']:.2f} vs "
          f"{whole['top1']:.2f}, codes identical: {same}")  # fmt: skip


def slurm() -> None:
    sweep = OUT / "slurm"
    cmd = [str(BIN / "lwcompress"), "-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=20", *COMMON,
           "model=resnet20", "threads=1", "layerwise.mode=independent", "layerwise.bucket_params=1",
           f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    while not (sweep / "0" / "layers").is_dir() or finished_layers(sweep / "0") < 5:
        assert proc.poll() is None
        time.sleep(0.5)
    (job_id,) = [p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)]
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    assert proc.wait() == 0
    s = json.loads((sweep / "0" / "summary.json").read_text())
    print(
        f"\nSLURM job {job_id} requeued after 5 layers: finished with slurm_restarts={s['slurm_restarts']}, "
        f"top-1 {s['top1']:.2f}; its submitit log:\n\n```"
    )
    for path in sorted((sweep / ".submitit" / job_id).glob("*_log.*")):
        lines = [ln for ln in path.read_text().splitlines() if "submitit" in ln or "signal" in ln.lower()]
        print(f"--- {path.name}\n" + "\n".join(lines))
    print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="processes,resume", help="of processes, resume, slurm (needs a cluster)")
    parser.add_argument("--processes", default="1,2", help="the process counts of part 1")
    args = parser.parse_args()
    parts = args.parts.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"runs in {OUT}\n")
    if "processes" in parts:
        processes([int(n) for n in args.processes.split(",")])
    if "resume" in parts:
        resume()
    if "slurm" in parts:
        slurm()


if __name__ == "__main__":
    main()
