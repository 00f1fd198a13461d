# Sourced by the round-3 probe scripts (run from experiments/probes/): `probe MODEL W A [solver_probe args]` runs
# solver_probe.py on one thread with every variant in the VARIANTS array, warnings dropped (an outer PYTHONPATH is
# kept after ".": a worktree at a fixed commit puts its own checkout there).
probe() {
  local variants=()
  for v in "${VARIANTS[@]}"; do variants+=(--variant "$v"); done
  PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} ../../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 "${@:4}" \
    "${variants[@]}" 2>&1 | grep -v -i warn
}
# `cell SEED MODEL W A [--all-layers]`: one probe of a validation cell with the distilled images kept in the probe
# cache, appended to $log only when whole; skipped if its header is in $log or in a file of the DONE array already,
# so a killed script resumes where it stopped.
DONE=()
cell() {
  local header="$2 W$3A$4${5:+ all layers} seed $1:"
  grep -qF "$header" "$log" "${DONE[@]}" 2>/dev/null && return
  probe "$2" "$3" "$4" --seed "$1" ${5:+"$5"} --image-cache ../../data/cache/probe_images > "$log.part" && cat "$log.part" >> "$log"
}
