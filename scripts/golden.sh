#!/usr/bin/env bash
# Fingerprints of what the tools produce (quick grids and single runs), for checking that a
# refactor changes no number: run it with two builds and compare the printed md5 lists.
# Timing fields (wall_seconds, elapsed lines) are removed before hashing; sweep lines are sorted
# (their order depends on thread timing). The statistics runs use the old key objective.engine
# (now student.simulation, still read) so that builds from before and after the rename compare.
#   scripts/golden.sh OUT_DIR            (uses target/release/annealvi; ANNEALVI=... to override)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ANNEALVI:-target/release/annealvi}
out=${1:?usage: scripts/golden.sh OUT_DIR}
rm -rf "$out" && mkdir -p "$out"
[ -x "$bin" ] || cargo build --release
q() { "$bin" "$@" >/dev/null 2>&1; }
q train --set optim.steps=500 --set record.every=10 --out "$out/train-vector"
q train --set objective.engine=statistics --set optim.steps=2000 --set record.every=10 --out "$out/train-stats"
q train --set objective.engine=statistics --set objective.estimator=stl --set student.trainable_weights=true \
  --set optim.steps=1000 --set record.every=50 --out "$out/train-stats-stl"
q train --set student.family=realnvp --set target.d=4 --set student.realnvp.layers=4 \
  --set student.realnvp.width=16 --set student.realnvp.depth=2 --set optim.steps=300 \
  --set record.every=25 --out "$out/train-flow"
q sweep --config configs/fig2-quick.toml --out "$out/sweep-fig2-quick"
q sweep --config configs/fig2-quick.toml --set run.objective.engine=statistics --out "$out/sweep-fig2-quick-stats"
q sweep --config configs/fig4-quick.toml --set grid.seeds=3 --set grid.extra_steps=200 --out "$out/sweep-fig4-quick"
q theory --config configs/fig2-quick.toml --out "$out/theory-paired"
q theory --config configs/fig2-quick.toml --method table --ics 2000 --out "$out/theory-table"
"$bin" design --max-collapse 0.2 --set run.target.d=32 --ics 500 --check-seeds 8 --threads 1 \
  2>/dev/null | grep -viE "elapsed|took|wall| s\)?$" > "$out/design.txt"
for f in $(cd "$out" && find . -type f \( -name "*.csv" -o -name "*.json" -o -name "*.jsonl" -o -name "*.txt" \) | sort); do
  case "$f" in
    *runs.jsonl) sed -E 's/,?"wall_seconds":[^,}]*//' "$out/$f" | sort ;;
    *.json) grep -v wall_seconds "$out/$f" ;;
    *) cat "$out/$f" ;;
  esac | md5sum | sed "s|-|$f|"
done
