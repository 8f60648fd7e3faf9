#!/usr/bin/env bash
# SGD check of the theory's schedule comparison (docs/theory.md §10): N seeds of the paper's
# model (d = 512, B = 32, eta = 0.05, 500 steps at beta = 1 after annealing) under each shape
# with the beta_i theory found best at annealing length T0; prints collapsed/N per shape.
#
# usage: scripts/check_shapes.sh [T0=2000] [N=40]
#   shape:beta_i pairs default to the theory's best at t0 = 2000.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=${1:-2000}; n=${2:-40}
shapes=${SHAPES:-"exponential:0.0955 linear_temperature:0.1445 linear:0.0955"}
cargo build --release --quiet
bin=target/release/annealvi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sb in $shapes; do
  shape=${sb%%:*}; bi=${sb##*:}
  c=0
  for seed in $(seq 0 $((n - 1))); do
    "$bin" train --set seed="$seed" --set schedule.kind="$shape" --set schedule.beta_i="$bi" \
      --set schedule.t0="$t0" --set optim.steps=$((t0 + 500)) --set student.sigma0=schedule \
      --set record.every=0 --out "$tmp/$shape-$seed" > /dev/null
    grep -q '"outcome": *"collapsed"' "$tmp/$shape-$seed/summary.json" && c=$((c + 1))
  done
  echo "$shape beta_i=$bi t0=$t0: collapsed $c/$n"
done
