# Sourced by the round-N table scripts: keep FROM TO PATTERN... copies the finished sweeps FROM/PATTERN that a round
# does not rerun into TO, each once (a sweep already in TO stays), under a lock so that two lanes can share TO.
keep() {
  mkdir -p "$2"
  (
    flock 9
    for pattern in "${@:3}"; do
      for dir in "$1"/$pattern; do
        [ -e "$2/$(basename "$dir")" ] || cp -r "$dir" "$2/"
      done
    done
  ) 9> "$2.lock"
}
