#!/usr/bin/env bash
# One piece of the paper-scale Figure 4 (configs/fig4.toml on the GPU sweep engine), run ON THE
# GPU MACHINE from the repository root with the binaries of scripts/build-gpu-bin.sh (gpu-bin/).
#
# It continues the sweep held in data/fig4-paper/ (sweep.toml + runs.jsonl: the merge of the
# pieces so far) for at most M minutes (`annealvi sweep --resume --max-minutes M`: no batch of
# flows starts after M minutes, nor one that the speed measured in this piece says would end
# after them), and writes only the runs it added, as a sweep directory of its own:
#   $OUT/piece/{sweep.toml,runs.jsonl,cells.csv}   (OUT defaults to out/fig4-paper-piece)
#   $OUT/piece.log                                 (the sweep's output)
# Back where cargo is, add the piece and merge (see data/fig4-paper/README.md):
#   cp -r $OUT/piece data/fig4-paper/pieces/$(date -u +%Y%m%dT%H%MZ)
#   annealvi merge data/fig4-paper/pieces/* --into data/fig4-paper
#     (the first time, while data/fig4-paper holds no sweep.toml yet: --out data/fig4-paper)
#   annealvi figure 4 --from data/fig4-paper --out out/fig4-paper
# Merging --into adds only the runs that data/fig4-paper does not hold yet, so merging every
# piece each time is right, and merging the same pieces twice adds nothing.
#
# usage: scripts/fig4-paper-piece.sh M
# Batches of FLOWS = 50 flows (grid.gpu_flows; 4 batches per cell of 200 runs, so that a batch
# fits in a short call and the budget can stop between batches). gpu_flows is part of the
# recorded configuration: every piece must use the value of data/fig4-paper/sweep.toml, or
# resume and merge refuse it.
# CONFIG (default configs/fig4.toml) and ENGINE (default gpu) choose the sweep's configuration
# and engine (the script's own test runs it on a tiny CPU configuration).
# Exit status: the sweep's (0 also when the budget ran out; the runs it wrote are kept in the
# piece either way), 2 on bad usage, and that of the first other step that fails (copying,
# extracting the piece's runs, merging them into the piece's cells.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 MINUTES" >&2
  exit 2
fi
minutes=$1
shift
bin=${ANNEALVI:-gpu-bin/annealvi}
config=${CONFIG:-configs/fig4.toml}
engine=${ENGINE:-gpu}
[ -x "$bin" ] || { echo "fig4-paper-piece: $bin missing: run scripts/build-gpu-bin.sh where cargo is" >&2; exit 2; }
out=${OUT:-out/fig4-paper-piece}
data=${DATA:-data/fig4-paper}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
rm -rf "$out/piece"
# the sweep so far
before=0
if [ -f "$data/sweep.toml" ]; then
  cp "$data/sweep.toml" "$work/"
  if [ -f "$data/runs.jsonl" ]; then
    cp "$data/runs.jsonl" "$work/"
    before=$(grep -c . "$work/runs.jsonl" || true)
  fi
fi
# the CUDA libraries for cudarc's dlopen, as scripts/gpu-check.sh finds them
libdirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
  /usr/local/nvidia/lib; do
  [ -d "$d" ] && libdirs="${libdirs:+$libdirs:}$d"
done
echo "fig4-paper-piece: $before runs so far; budget $minutes min" | tee "$out/piece.log"
t0=$(date +%s)
# a failed sweep still goes on to save the runs it wrote; its status is the script's
rc=0
LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin" sweep --config "$config" \
  --set grid.device="$engine" --set grid.gpu_flows="${FLOWS:-50}" "$@" --out "$work" --resume \
  --max-minutes "$minutes" 2>&1 | tee -a "$out/piece.log" || rc=${PIPESTATUS[0]}
[ -f "$work/sweep.toml" ] || { echo "fig4-paper-piece: the sweep wrote no sweep.toml" >&2; exit "$(( rc ? rc : 1 ))"; }
echo "fig4-paper-piece: sweep exit $rc after $(($(date +%s) - t0)) s" | tee -a "$out/piece.log"
# the lines this piece added (runs.jsonl is append-only; a torn last line is left out)
mkdir -p "$out/piece"
cp "$work/sweep.toml" "$out/piece/"
python3 - "$work/runs.jsonl" "$before" "$out/piece/runs.jsonl" <<'PY'
import json, sys
src, before, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(src).read().splitlines(keepends=True)[before:] if before >= 0 else []
good = []
for l in lines:
    try:
        json.loads(l)
    except ValueError:
        continue
    if l.endswith("\n"):
        good.append(l)
open(dst, "w").writelines(good)
print(f"fig4-paper-piece: {len(good)} new runs in {dst}")
PY
# the piece's cells.csv (merging a sweep into itself adds nothing and rewrites cells.csv; its
# warnings about incomplete cells are expected: a piece holds part of the grid)
"$bin" merge "$out/piece" --into "$out/piece" >>"$out/piece.log" 2>&1 ||
  { echo "fig4-paper-piece: merge of the piece failed (see $out/piece.log)" >&2; exit 1; }
[ -f "$out/piece/cells.csv" ] || { echo "fig4-paper-piece: no cells.csv in $out/piece" >&2; exit 1; }
exit "$rc"
