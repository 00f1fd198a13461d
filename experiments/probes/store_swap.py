"""Which learned unit makes two runs of one cell end apart? Two finished runs of the same command but another
solver seed (e.g. the same images under `layerwise.seed` 0 and 1) hold every unit's learned state in their layer
stores. This copies the `base` run's images and store, puts the `donor` run's state of the units matching
`--units` in its place (only the state keys in `--keys`, if given), and reruns the base run's command on it: every
layer is then loaded, none trained, and the network is evaluated as the base run was (validation split if the
run's command says so). Hydra overrides after the options replace the base's own: eval_split=val to score on the
validation split, seed=N where the base was job N of a sweep over seeds. Bisect over `--units` to find the unit
whose learned state carries the difference (round10_tuning.md §2). With --diff, only how many elements of each
state key differ between the two runs.

    python experiments/probes/store_swap.py --base logs/round10/img0_s1/mobilenetv2_small_w3a3_default/0 \
        --donor logs/round10/img0_s0/mobilenetv2_small_w3a3_default/0 --units 'features\\.3\\.' \
        --keys a_scale,layer.weight
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from replay import task_overrides

from lwcompress import io


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a finished run's job dir (holds layers/, images/)")
    parser.add_argument("--donor", type=Path, required=True, help="the other run's job dir")
    parser.add_argument("--units", required=True, help="regex over the stored layer names taken from the donor")
    parser.add_argument("--keys", help="comma-separated state keys to take (default: the layers' whole state)")
    parser.add_argument("--diff", action="store_true", help="only count where the matching units' states differ")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides in place of the base's own")
    args = parser.parse_args()
    if args.diff:
        for donor in sorted((args.donor / "layers").glob("*.pt")):
            if re.search(args.units, donor.stem):
                mine, given = (io.torch_load(p) for p in (args.base / "layers" / donor.name, donor))
                counts = {k: f"{int((mine[k] != given[k]).sum())} of {mine[k].numel()}" for k in mine}
                print(f"{donor.stem}: elements that differ {counts}")
        return
    replaced = {o.split("=", 1)[0] for o in args.overrides}  # e.g. seed=0 in place of a sweep's seed=0,1,2
    overrides = [o for o in task_overrides(args.base) if o.split("=", 1)[0] not in replaced]
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "0"
        shutil.copytree(args.base / "layers", job / "layers")
        if (args.base / "images").is_dir():  # else the images come from the cross-run cache, as they did then
            shutil.copytree(args.base / "images", job / "images")
        taken = []
        for donor in sorted((args.donor / "layers").glob("*.pt")):
            if not re.search(args.units, donor.stem):
                continue
            target = job / "layers" / donor.name
            if args.keys:
                state, given = io.torch_load(target), io.torch_load(donor)
                state.update({k: given[k] for k in args.keys.split(",")})
                io.torch_save(target, state)
            else:
                shutil.copy(donor, target)
                shutil.copy(donor.with_suffix(".json"), target.with_suffix(".json"))
            taken.append(donor.stem)
        if not taken:
            sys.exit(f"no stored layer of {args.donor} matches {args.units!r}")
        cli = Path(sys.executable).parent / "lwcompress"
        command = [str(cli), "-m", f"hydra.sweep.dir={tmp}", *overrides, *args.overrides]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the base run's command failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        result = [line for line in (job / "cli.log").read_text().splitlines() if re.match(r"\w+ W\d+A\d+ \(", line)]
        names = ", ".join(taken) if len(taken) <= 3 else f"{len(taken)} layers ({taken[0]} ... {taken[-1]})"
        print(f"{names} from the donor{' (' + args.keys + ')' if args.keys else ''}: {result[-1]}")


if __name__ == "__main__":
    main()
