#!/usr/bin/env bash
# End-to-end test of the Slurm scripts on a real Slurm: a one-node cluster on localhost.
#
#  1. installs slurm-wlm and munge with apt-get when missing (needs root);
#  2. starts munged, slurmctld and slurmd (a generated slurm.conf, key, state and logs in a
#     temporary directory; non-default ports), recording their PIDs;
#  3. runs the sweep unsharded (the reference), then submits it with scripts/slurm/submit.sh as
#     an array of 4 tasks plus the merge job, waits, and checks that the merged runs.jsonl equals
#     the reference run for run (every field but the wall time);
#  4. submits it again, cancels array task 2 (scancel) once it has written some but not all of
#     its runs, requeues it (scontrol requeue), waits, and checks that the cancelled shard lost
#     and duplicated nothing and that the merge again equals the reference;
#  5. stops every daemon it started (by PID) and removes the temporary directory.
#
# Exit status 0 when every check passed, 1 on a mismatch or a timeout, 2 when it cannot set up.
# The check to run before changing sweep, shard, resume or merge code.
#
#   scripts/slurm/test-local.sh                 # the quick Figure 2 sweep (configs/fig2-quick.toml)
#   CONFIG=FILE SETS="--set grid.seeds=4" scripts/slurm/test-local.sh
# Environment: ANNEALVI (binary; default: `cargo build --release` and target/release/annealvi),
#   CONFIG, SETS (extra --set words), PORT (slurmctld port, default 16817; slurmd uses PORT+1),
#   KEEP=1 (keep the temporary directory), TIMEOUT (seconds per wait, default 1800).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
config=${CONFIG:-configs/fig2-quick.toml}
sets=${SETS:-}
port=${PORT:-16817}
timeout_s=${TIMEOUT:-1800}
started=$(date +%s)
say() { echo "test-local: $*"; }
fail() { say "FAILED: $*"; exit 1; }

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
  ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends slurm-wlm munge >/dev/null || { say "cannot install slurm-wlm/munge"; exit 2; }
fi
if [ -z "${ANNEALVI:-}" ]; then
  cargo build --release --quiet || { say "cargo build failed"; exit 2; }
  ANNEALVI=$root/target/release/annealvi
fi
export ANNEALVI
[ -x "$ANNEALVI" ] || { say "no binary at $ANNEALVI"; exit 2; }

# 2. daemons
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
jobs_submitted=()
cleanup() {
  for j in "${jobs_submitted[@]}"; do scancel "$j" 2>/dev/null; done
  [ ${#jobs_submitted[@]} -gt 0 ] && sleep 2
  # reverse order: slurmd, slurmctld, munged
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  if [ "${KEEP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log"
chmod 700 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge/munge.key"
chmod 400 "$tmp/munge/munge.key"
sock=$tmp/munge/munge.socket
munged -F --force --socket="$sock" --key-file="$tmp/munge/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munged.seed" \
  --log-file="$tmp/log/munged.log" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
munge -S "$sock" -n | unmunge -S "$sock" >/dev/null 2>&1 || {
  say "munged did not start:"; cat "$tmp/log/munged.out" "$tmp/log/munged.log" 2>/dev/null; exit 2; }

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=annealvi-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
MailProg=/bin/true
PlugStackConfig=$tmp/plugstack.conf
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
: >"$tmp/plugstack.conf"
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
say "one-node cluster: $host, $cpus CPUs, ${mem} MB, slurm.conf in $tmp"
ready=0
for _ in $(seq 150); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -1)
  case $state in idle* | mix* | alloc*) ready=1; break ;; esac
  sleep 0.2
done
if [ $ready -ne 1 ]; then
  say "the node did not come up (state '${state:-none}'):"
  tail -n 20 "$tmp"/log/*.log "$tmp"/log/*.out
  exit 2
fi

job_state() { scontrol -o show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }
# waits until no job of $1 (a job id; for an array, every task) is pending or running
wait_done() {
  local t0 now
  t0=$(date +%s)
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    now=$(date +%s)
    [ $((now - t0)) -gt "$timeout_s" ] && fail "job $1 still running after $timeout_s s"
    sleep 1
  done
}
# same runs, field by field (the wall time aside); no run twice in any file
compare() {
  python3 - "$@" <<'PY'
import json, sys
def load(path):
    runs, dup = {}, 0
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            r.pop("wall_seconds", None)
            k = (r["beta_i"], r["t0"], r["seed"])
            dup += k in runs
            runs[k] = r
    return runs, dup
ref, dref = load(sys.argv[1])
got, dgot = load(sys.argv[2])
bad = [k for k in ref if k in got and got[k] != ref[k]]
missing = [k for k in ref if k not in got]
extra = [k for k in got if k not in ref]
print(f"compared {len(ref)} reference runs with {len(got)} merged runs: {len(missing)} missing, "
      f"{len(extra)} extra, {dgot} duplicated, {len(bad)} different")
for k in (missing + extra)[:5]:
    print("  e.g.", k)
for k in bad[:3]:
    diff = {f: (ref[k][f], got[k].get(f)) for f in ref[k] if ref[k][f] != got[k].get(f)}
    print("  e.g.", k, "field: (reference, merged):", diff)
sys.exit(0 if not (bad or missing or extra or dref or dgot) else 1)
PY
}

# 3. reference, then the array + merge
t=$(date +%s)
# shellcheck disable=SC2086
"$ANNEALVI" sweep --config "$config" $sets --out "$tmp/ref" >"$tmp/log/ref.out" 2>&1 ||
  { cat "$tmp/log/ref.out"; fail "unsharded reference sweep failed"; }
nref=$(wc -l <"$tmp/ref/runs.jsonl")
say "reference: $config${sets:+ $sets} unsharded: $nref runs in $(($(date +%s) - t)) s"

submit() { # out -> sets $array $merge
  local o
  o=$(SETS="$sets" scripts/slurm/submit.sh "$config" "$1" 4 --cpus-per-task=1 --mem=500M) ||
    fail "submit.sh failed: $o"
  array=$(echo "$o" | sed -n 's/^array //p')
  merge=$(echo "$o" | sed -n 's/^merge //p')
  [ -n "$array" ] && [ -n "$merge" ] || fail "submit.sh printed no job ids: $o"
  jobs_submitted+=("$array" "$merge")
}
t=$(date +%s)
submit "$tmp/run1"
say "run 1: array $array (4 tasks) + merge $merge (afterok)"
wait_done "$array"
wait_done "$merge"
for k in 1 2 3 4; do
  s=$(job_state "${array}_$k")
  [ "$s" = COMPLETED ] || fail "array task $k ended $s (log: $(tail -n 3 "$tmp"/run1/logs/slurm-"${array}"_"$k".out))"
done
[ "$(job_state "$merge")" = COMPLETED ] || fail "merge job ended $(job_state "$merge")"
say "run 1 finished in $(($(date +%s) - t)) s"
compare "$tmp/ref/runs.jsonl" "$tmp/run1/merged/runs.jsonl" || fail "run 1: merged sweep differs from the reference"

# 4. cancel task 2 mid-run, requeue it
t=$(date +%s)
submit "$tmp/run2"
shard=$tmp/run2/shards/2/runs.jsonl
planned=$(grep -c . "$tmp/run1/shards/2/runs.jsonl")
say "run 2: array $array + merge $merge; waiting for task 2 to write its first runs (of $planned)"
t1=$(date +%s)
while :; do
  n=$(cat "$shard" 2>/dev/null | grep -c .)
  [ "$n" -ge 1 ] && break
  [ $(($(date +%s) - t1)) -gt "$timeout_s" ] && fail "task 2 wrote nothing in $timeout_s s"
  sleep 0.2
done
scancel "${array}_2"
for _ in $(seq 100); do
  s=$(job_state "${array}_2")
  case $s in PENDING | RUNNING | COMPLETING | "") sleep 0.2 ;; *) break ;; esac
done
n_cancel=$(cat "$shard" 2>/dev/null | grep -c .)
say "scancel ${array}_2: task 2 ended $s with $n_cancel of $planned runs written"
[ "$s" = CANCELLED ] || fail "task 2 ended $s, not CANCELLED (it finished before the cancel: use a longer CONFIG)"
[ "$n_cancel" -lt "$planned" ] || fail "task 2 had finished its shard before the cancel; nothing to test"
scontrol requeue "${array}_2" || fail "scontrol requeue ${array}_2 failed"
say "requeued ${array}_2"
wait_done "$array"
for k in 1 2 3 4; do
  s=$(job_state "${array}_$k")
  [ "$s" = COMPLETED ] || fail "run 2: array task $k ended $s"
done
restarts=$(scontrol -o show job "${array}_2" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
# the cancel made the merge job's afterok dependency unsatisfiable for good (Slurm 22.05 keeps
# the cancelled task as failed even after the requeued task succeeds; submit.sh's merge job is
# then cancelled or left pending): merge again, now that every task is done
ms=$(job_state "$merge")
if [ "$ms" != COMPLETED ]; then
  say "merge $merge is $ms ($(scontrol -o show job "$merge" | sed -n 's/.*Reason=\([^ ]*\).*/\1/p')); submitting merge.sbatch again"
  scancel "$merge" 2>/dev/null
  merge=$(OUT="$tmp/run2" sbatch --parsable --export=ALL --output="$tmp/run2/logs/merge-%j.out" \
    scripts/slurm/merge.sbatch) || fail "cannot submit the merge"
  jobs_submitted+=("$merge")
fi
wait_done "$merge"
[ "$(job_state "$merge")" = COMPLETED ] || fail "run 2: merge job ended $(job_state "$merge")"
say "run 2 finished in $(($(date +%s) - t)) s (task 2 restarts: ${restarts:-?})"
grep "shard 2/4" "$tmp/run2/logs/slurm-${array}_2.out" | sed 's/^/  task 2: /'
# the cancelled shard itself: every run once, all of them
python3 - "$shard" "$planned" <<'PY' || fail "run 2: shard 2 lost or duplicated runs"
import json, sys
keys = [(r["beta_i"], r["t0"], r["seed"]) for r in map(json.loads, open(sys.argv[1]))]
print(f"shard 2 after the requeue: {len(keys)} lines, {len(set(keys))} distinct runs, {sys.argv[2]} planned")
sys.exit(0 if len(keys) == len(set(keys)) == int(sys.argv[2]) else 1)
PY
compare "$tmp/ref/runs.jsonl" "$tmp/run2/merged/runs.jsonl" || fail "run 2: merged sweep differs from the reference"

say "PASSED in $(($(date +%s) - started)) s: merged array = unsharded sweep ($nref runs), twice; task 2 cancelled at $n_cancel/$planned runs and requeued, nothing lost or duplicated"
