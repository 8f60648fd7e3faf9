#!/usr/bin/env bash
# Submits a sweep as a Slurm job array of N shards plus a merge job that runs after all of them.
#
#   scripts/slurm/submit.sh CONFIG OUT N [sbatch options for the array...]
#   e.g. scripts/slurm/submit.sh configs/fig2.toml sweeps/fig2 16 --cpus-per-task=8 --time=1:00:00
#
# Shard K writes OUT/shards/K, the merge writes OUT/merged, Slurm's logs go to OUT/logs/. Run it
# from the repository root (the jobs start in the submission directory). Prints the two job ids ("array JOBID", "merge JOBID").
# ANNEALVI (binary) and SETS (extra --set words) are passed on to the jobs.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG OUT N [sbatch options for the array...]" >&2
  exit 2
fi
config=$1 out=$2 n=$3
shift 3
case $n in '' | *[!0-9]*) echo "N must be a positive integer, got '$n'" >&2; exit 2 ;; esac
[ "$n" -ge 1 ] || { echo "N must be at least 1" >&2; exit 2; }
[ -f "$config" ] || { echo "no configuration file $config" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/shards" "$out/logs"
# the paths travel in the environment (--export=ALL), not inside --export=ALL,NAME=value, whose
# commas would split a path that contains one
export CONFIG="$config" OUT="$out" SHARDS="$n"
array=$(sbatch --parsable --array="1-$n" --export=ALL \
  --output="$out/logs/slurm-%A_%a.out" "$@" "$here/sweep-array.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --export=ALL --output="$out/logs/merge-%j.out" "$here/merge.sbatch")
merge=${merge%%;*}
echo "array $array"
echo "merge $merge"
