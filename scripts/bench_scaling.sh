#!/usr/bin/env bash
# How the cost of `annealvi bench gmm` grows with d and B (per-step cost; total cost is linear
# in the number of steps), and with threads. Prints a markdown table of run-steps/s and of
# nanoseconds per (sample x dimension), 1 thread.
#
# usage: scripts/bench_scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/annealvi
rate() { "$bin" bench gmm --d "$1" --seeds 10 --samples "$2" --steps "$3" --threads "${4:-1}" | tail -n 1 | sed 's/run-steps\/s: //'; }
echo "| d | B | run-steps/s (1 thread) | ns per sample·dimension |"
echo "|---|---|---|---|"
for d in 128 512 2048; do
  for b in 8 32 128; do
    steps=$(( 2000000 / (d * b) + 20 ))
    r=$(rate "$d" "$b" "$steps")
    ns=$(python3 -c "print(f'{1e9/($r*2*$b*$d):.2f}')")
    echo "| $d | $b | $r | $ns |"
  done
done
echo
echo "threads (d=512, B=32, 10 seeds): 1: $(rate 512 32 100 1)  2: $(rate 512 32 100 2)"
