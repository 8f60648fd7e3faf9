#!/usr/bin/env bash
# Side-by-side SGD throughput: `annealvi bench gmm` against scripts/bench_torch.py (PyTorch,
# batched, autograd) on the same workload (d, seeds, B; bimodal R = 3, w* = 0.8; 2-component
# student, fixed weights; eta = 0.05; no annealing), 1 and 2 threads. PyTorch uses its faster
# --sqdist matmul mode (distances via one batched matmul) in float64 and float32. Prints a markdown table
# of run-steps/s and ratios. PyTorch is slow, so it runs fewer (timed) steps; the measure is a
# rate, so this does not bias the ratio.
#
# usage: [ROUNDS=3] scripts/bench_compare.sh [D=512] [SEEDS=100] [B=32] [RUST_STEPS=200] [TORCH_STEPS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
d=${1:-512}; seeds=${2:-100}; b=${3:-32}; rs=${4:-200}; ts=${5:-20}
cargo build --release --quiet
bin=target/release/annealvi
rate() { tail -n 1 | sed 's/run-steps\/s: //'; }
# Timings on a shared virtual machine drift by tens of percent from minute to minute, so the
# measurements are interleaved over ROUNDS rounds and the medians reported.
rounds=${ROUNDS:-3}
declare -A all
for round in $(seq "$rounds"); do
  for th in 1 2; do
    all[rust$th]+=" $("$bin" bench gmm --d "$d" --seeds "$seeds" --samples "$b" --steps "$rs" --threads "$th" | rate)"
    all[t64_$th]+=" $(python3 scripts/bench_torch.py --d "$d" --seeds "$seeds" --samples "$b" --steps "$ts" --warmup 2 --threads "$th" --dtype float64 --sqdist matmul 2>/dev/null | rate)"
    all[t32_$th]+=" $(python3 scripts/bench_torch.py --d "$d" --seeds "$seeds" --samples "$b" --steps "$ts" --warmup 2 --threads "$th" --dtype float32 --sqdist matmul 2>/dev/null | rate)"
  done
done
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" $1; }
declare -A r
for k in "${!all[@]}"; do r[$k]=$(median "${all[$k]}"); done
ratio() { python3 -c "print(f'{$1/$2:.1f}')"; }
echo "d=$d, seeds=$seeds, B=$b per component; torch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null); medians of $rounds interleaved rounds"
for k in rust1 t64_1 t32_1 rust2 t64_2 t32_2; do echo "  $k:${all[$k]}"; done
echo
echo "| threads | annealvi (f64) | PyTorch f64 | PyTorch f32 | annealvi / PyTorch f64 | annealvi / PyTorch f32 |"
echo "|---|---|---|---|---|---|"
for th in 1 2; do
  echo "| $th | ${r[rust$th]} | ${r[t64_$th]} | ${r[t32_$th]} | $(ratio "${r[rust$th]}" "${r[t64_$th]}")× | $(ratio "${r[rust$th]}" "${r[t32_$th]}")× |"
done
echo
echo "annealvi 2 threads / 1 thread: $(ratio "${r[rust2]}" "${r[rust1]}")×"
