#!/usr/bin/env bash
# Round 5 (issue 23): GENIE's images on torchvision's networks, validation split (eval_split=val), through the CLI
# as the benchmark runs them (experiment=torchvision, one thread, one job at a time; resumable pieces of
# experiments/benchmarks/round2_table.sh under logs/round5_val/<variant>); top1 and rtn_top1 in each run's
# summary.json (round5_tuning.md §1 quotes them).
#   bash experiments/probes/round5_torchvision_val.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
run() {  # run VARIANT SEEDS MODEL METHOD [overrides...]
  SEEDS=$2 ROUND2_DIR=logs/round5_val/$1 EXTRA="eval_split=val ${*:5}" EXPERIMENT=torchvision THREADS=1 \
    PATH=".venv/bin:$PATH" bash experiments/benchmarks/round2_table.sh "$3" w4a4 "$4"
}
genie="generator=genie"
refined="generator=genie generator.refine_steps=100"
for model in mobilenet_v2_fmnist resnet18_fmnist; do
  run rtn 0 $model rtn
  run distilled 0 $model default
  run genie100 0 $model default $genie
done
run genie_r100 0 mobilenet_v2_fmnist default $refined
run genie200 0 mobilenet_v2_fmnist default $genie generator.steps=200
run genie_r50 0 mobilenet_v2_fmnist default $genie generator.refine_steps=50
run genie_r100_s1 1 mobilenet_v2_fmnist default $refined
run distilled_s1 1 mobilenet_v2_fmnist default
# the learned input steps on genie's images: with them fixed (the sigma rule), genie against distilled
run genie100_fixed_scale 0 mobilenet_v2_fmnist default $genie compressor.learn_input_scale=false
run distilled_fixed_scale 0 mobilenet_v2_fmnist default compressor.learn_input_scale=false
# both domains: half the chunks genie's, half per-pixel distilled (generator.pixel_fraction=0.5)
run genie_mixed 0 mobilenet_v2_fmnist default $genie generator.pixel_fraction=0.5
run genie_mixed_s1 1 mobilenet_v2_fmnist default $genie generator.pixel_fraction=0.5
run genie_mixed 0 resnet18_fmnist default $genie generator.pixel_fraction=0.5
