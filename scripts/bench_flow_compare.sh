#!/usr/bin/env bash
# Side-by-side RealNVP training throughput: `annealvi bench flow` against
# scripts/bench_flow_torch.py (PyTorch CPU, autograd) on the same model and workload (8 affine
# couplings, depth-4 ReLU MLPs, s = tanh, batch 256, Adam 1e-3, bimodal target R = 3, w* = 0.8,
# beta = 1), 1 thread, at d=16/h=64 and d=128/h=512. Runs are interleaved over ROUNDS rounds
# (timings on a shared machine drift) and the medians reported with the ratio annealvi / PyTorch.
#
# usage: [ROUNDS=3] scripts/bench_flow_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/annealvi
rate() { tail -n 1 | sed 's/steps\/s: //'; }
rounds=${ROUNDS:-3}
declare -A all
sizes="16:64:200 128:512:12"
for round in $(seq "$rounds"); do
  for sz in $sizes; do
    IFS=: read -r d h n <<<"$sz"
    all[rust_$d]+=" $("$bin" bench flow --d "$d" --width "$h" --batch 256 --steps "$n" --threads 1 | rate)"
    all[torch_$d]+=" $(python3 scripts/bench_flow_torch.py --d "$d" --width "$h" --batch 256 --steps "$n" --threads 1 2>/dev/null | rate)"
  done
done
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3g}')" $1; }
echo "RealNVP reverse-KL steps/s, 1 thread, batch 256; torch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null); medians of $rounds interleaved rounds"
for k in "${!all[@]}"; do echo "  $k:${all[$k]}"; done | sort
echo
echo "| d / h | annealvi (f32) | PyTorch (f32) | annealvi / PyTorch |"
echo "|---|---|---|---|"
for sz in $sizes; do
  IFS=: read -r d h n <<<"$sz"
  a=$(median "${all[rust_$d]}"); t=$(median "${all[torch_$d]}")
  echo "| $d / $h | $a | $t | $(python3 -c "print(f'{$a/$t:.2f}')")× |"
done
