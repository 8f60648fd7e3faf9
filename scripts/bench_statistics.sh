#!/usr/bin/env bash
# The statistics engine against the vector engine (`annealvi bench gmm`, the paper's problem, no
# annealing, B = 32 samples per component, 1 thread), side by side in one process per d (the
# engines alternate for several rounds; the median ratio is printed), and the statistics
# engine alone at d = 512, 8192 and 10^5 (flat in d).
#   scripts/bench_statistics.sh            (uses target/release/annealvi; ANNEALVI=... to override)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ANNEALVI:-target/release/annealvi}
[ -x "$bin" ] || cargo build --release
echo "== side by side (ratio = statistics / vector, same process)"
# the vector engine's cost grows with d: fewer seeds and steps at large d
for spec in "512 40 3000 5" "1024 20 500 3" "8192 8 100 3" "100000 2 20 1"; do
  set -- $spec
  "$bin" bench gmm --simulation both --d "$1" --seeds "$2" --steps "$3" --threads 1 --rounds "$4" \
    | grep -E "simulation|statistics /"
done
echo "== statistics engine alone: 40 runs x 2000 steps, 1 thread (median of 3 interleaved rounds)"
declare -A rates
for round in 1 2 3; do
  for d in 512 8192 100000; do
    rates[$d]+="$("$bin" bench gmm --simulation statistics --d "$d" --seeds 40 --steps 2000 --threads 1 \
      | tail -1 | awk '{print $2}') "
  done
done
for d in 512 8192 100000; do
  printf "d = %-6s run-steps/s: %s (rounds: %s)\n" "$d" \
    "$(echo ${rates[$d]} | tr ' ' '\n' | sort -g | sed -n 2p)" "${rates[$d]% }"
done
