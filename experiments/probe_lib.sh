# Sourced by the round-3 probe scripts (run from experiments/): `probe MODEL W A [solver_probe args]` runs
# solver_probe.py on one thread with every variant in the VARIANTS array, warnings dropped.
probe() {
  local variants=()
  for v in "${VARIANTS[@]}"; do variants+=(--variant "$v"); done
  PYTHONPATH=. ../.venv/bin/python solver_probe.py --model "$1" --bits "$2" "$3" --threads 1 "${@:4}" \
    "${variants[@]}" 2>&1 | grep -v -i warn
}
