# Sourced by probe scripts that read finished benchmark runs as models (round13_domain.sh, round14_first_block.sh).
# The benchmark keeps no compressed.pt (save_model=false), so `save NAME JOB_DIR SEED [DONOR_JOB UNIT_PREFIX]` reruns
# the run's command (as it ran: replay.py) on a copy of its layer store with save_model=true into $out/NAME/0 (every
# layer loaded, none trained; prints the run's own top-1 on the validation split). With a donor, the donor run's stored layers whose
# names start with UNIT_PREFIX replace the run's own first (store_swap.py's swap, kept as a model).
save() {
  rm -rf "$out/$1" && mkdir -p "$out/$1/0" && cp -r "$2/layers" "$out/$1/0/"
  if [ -n "${4:-}" ]; then cp "$4/layers/$5".* "$out/$1/0/layers/"; fi
  mapfile -t task < <(.venv/bin/python experiments/probes/replay.py "$2")
  .venv/bin/lwcompress -m "hydra.sweep.dir=$out/$1" "${task[@]}" "seed=$3" eval_split=val save_model=true 2>&1 \
    | grep -E "^\w+ W[0-9]+A[0-9]+ \(" | sed "s/^/$1: /"
}
