#!/usr/bin/env bash
# Collapse counts of exponential annealing at d = 512 (the Figure 1 setting) for a few
# (beta_i, t0), over seeds 0..N-1, using `annealvi train`. This is how row (iii) of Figure 1
# was chosen (docs/theory.md, section 7).
#
# usage: scripts/fig1_scan.sh [N=16] [extra --set args...]
#   e.g. scripts/fig1_scan.sh 8 --set objective.estimator=exact
set -euo pipefail
n=${1:-16}
shift || true
bin=${ANNEALVI:-target/release/annealvi}
[ -x "$bin" ] || cargo build --release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for cell in "0.01 2000" "0.05 2000" "0.2 2000" "0.05 4000"; do
  set -- $cell "$@"
  bi=$1; t0=$2; shift 2
  steps=$((t0 + 1000))
  counts=$(seq 0 $((n - 1)) | xargs -P"$(nproc)" -I{} "$bin" train \
      --set seed={} --set schedule.kind=exponential --set schedule.beta_i="$bi" \
      --set schedule.t0="$t0" --set student.sigma0='"schedule"' --set optim.steps="$steps" \
      --set record.every=100000000 "$@" --out "$tmp/$bi-$t0-{}" | cut -d' ' -f1 | sort | uniq -c | tr -s ' \n' ' ')
  echo "beta_i=$bi t0=$t0: $counts"
done
