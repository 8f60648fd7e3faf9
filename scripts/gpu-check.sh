#!/usr/bin/env bash
# GPU check for the RealNVP CUDA engine, run ON THE GPU MACHINE from the repository root. No
# cargo there: it uses the binaries that scripts/build-gpu-bin.sh built (gpu-bin/, carried over).
#
#  1. gpu-bin/gpu_test --nocapture with ANNEALVI_REQUIRE_GPU=1: GPU loss and gradients (full and
#     STL, two flows, d=16/h=64/8 layers/depth 4/B=256, and a checkerboard/tanh case) against the
#     CPU RealNVP in f64, and a 320-step training run. A skipped GPU test is a failure here.
#  2. Throughput: `gpu-bin/annealvi bench flow-gpu` against `python3 scripts/bench_flow_torch.py
#     --device cuda` (same model, batch 256, Adam 1e-3) at d=16/h=64 and d=128/h=512 (one flow),
#     and 32 flows batched at d=16/h=64; a markdown table at the end.
#  3. The GPU sweep engine against the CPU engine on the quick Figure 4 grid (4 seeds per cell,
#     run for run), and the time of one paper-scale batch of 200 flows (SKIP_SWEEP=1 skips).
#
# Everything is printed; if $OUT is set, gpu_test.log, bench.log and summary.md are written
# there too. Exit status: 0 when the test passed (bench failures are reported in the table),
# 1 when the test failed or was skipped or the GPU sweep engine is outside the tolerance of part 3, 2 when the binaries are missing. About 4–7 minutes
# (unmeasured with part 3: estimate).
#
# usage: scripts/gpu-check.sh            (STEPS_SMALL=500 STEPS_LARGE=200 to change the lengths)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-}
log() { echo "$@"; if [ -n "$out" ]; then echo "$@" >>"$out/summary.md"; fi; }
if [ -n "$out" ]; then mkdir -p "$out" && : >"$out/summary.md"; fi
for b in gpu-bin/gpu_test gpu-bin/annealvi; do
  if [ ! -x "$b" ]; then
    echo "gpu-check: $b missing: run scripts/build-gpu-bin.sh where cargo is, and carry gpu-bin/" >&2
    exit 2
  fi
done

# CUDA libraries for cudarc's dlopen: the toolkit first (it matches the driver), then pip wheels
libdirs=""
add_dir() { case ":$libdirs:" in *":$1:"*) ;; *) [ -d "$1" ] && libdirs="${libdirs:+$libdirs:}$1" ;; esac; }
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
  /usr/local/nvidia/lib; do
  add_dir "$d"
done
pyroots=$(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)
for root in $pyroots /usr/local/cuda*/; do
  [ -d "$root" ] || continue
  while IFS= read -r f; do add_dir "$(dirname "$f")"; done < <(find "$root" -maxdepth 6 \
    \( -name 'libnvrtc.so.13*' -o -name 'libcublas.so.13*' -o -name 'libnvrtc.so' -o -name 'libcublas.so' \) 2>/dev/null | sort)
done
# only for our binaries: a changed LD_LIBRARY_PATH can make python3 pick up another libpython
cudaenv() { LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

log "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ))"
log ""
log "- binaries built from: $(cat gpu-bin/COMMIT 2>/dev/null || echo unknown)"
log "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo 'nvidia-smi failed')"
log "- torch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo 'not importable')"
log "- library dirs added for our binaries: ${libdirs:-none}"
log "- libs: $(for l in libcuda.so.1 libnvrtc.so.13 libcublas.so.13; do p=$( (ldconfig -p 2>/dev/null | grep -m1 " $l " | sed 's/.*=> //') ); for dd in ${libdirs//:/ }; do [ -z "$p" ] && [ -e "$dd/$l" ] && p="$dd/$l"; done; echo -n "$l=${p:-NOT FOUND} "; done)"
log ""

# 1. correctness
testlog=$(mktemp)
ANNEALVI_REQUIRE_GPU=1 cudaenv timeout 240 gpu-bin/gpu_test --nocapture --test-threads 1 2>&1 | tee "$testlog"
trc=${PIPESTATUS[0]}
[ -n "$out" ] && cp "$testlog" "$out/gpu_test.log"
status=0
if [ "$trc" -ne 0 ] || grep -q "skipped: no CUDA device" "$testlog"; then
  log "**GPU TEST FAILED** (exit $trc$(grep -q 'skipped: no CUDA device' "$testlog" && echo ', skipped: no CUDA device'))"
  grep -E "panicked|no CUDA|error" "$testlog" | head -20 | sed 's/^/    /' | while IFS= read -r l; do log "$l"; done
  status=1
else
  log "GPU test passed. Comparison lines:"
  log ""
  grep -E "^(NVRTC|cuda|CUDA device|training|note:)" "$testlog" | sed 's/^/    /' | while IFS= read -r l; do log "$l"; done
fi
log ""

# 2. throughput
benchlog=${out:+$out/bench.log}
benchlog=${benchlog:-$(mktemp)}
: >"$benchlog"
rate() { tail -n 1 | sed -n 's/^steps\/s: //p'; }
rs=${STEPS_SMALL:-500}
rl=${STEPS_LARGE:-200}
rows=()
for cfg in "16 64 1 $rs" "128 512 1 $rl" "16 64 32 $rs"; do
  read -r d h f n <<<"$cfg"
  echo "== annealvi bench flow-gpu d=$d h=$h flows=$f steps=$n" | tee -a "$benchlog"
  a=$(cudaenv timeout 120 gpu-bin/annealvi bench flow-gpu --d "$d" --width "$h" --flows "$f" --steps "$n" 2>&1 | tee -a "$benchlog" | rate)
  echo "== torch d=$d h=$h flows=$f steps=$n" | tee -a "$benchlog"
  t=$(timeout 180 python3 scripts/bench_flow_torch.py --device cuda --d "$d" --width "$h" --flows "$f" --steps "$n" --warmup 20 2>&1 | tee -a "$benchlog" | rate)
  ratio=$(python3 -c "print(f'{float(\"$a\")/float(\"$t\"):.2f}x')" 2>/dev/null || echo "n/a")
  rows+=("| $d / $h | $f | ${a:-failed} | ${t:-failed} | $ratio |")
done
tail -n 40 "$benchlog"
log "## Training throughput (steps/s; one step advances every flow; batch 256 per flow, Adam 1e-3, f32)"
log ""
log "| d / h | flows | annealvi CUDA | PyTorch CUDA | annealvi / PyTorch |"
log "|---|---|---|---|---|"
for r in "${rows[@]}"; do log "$r"; done
log ""
# 3. the GPU sweep engine (grid.device = "gpu"): the quick Figure 4 grid with 4 seeds per cell
#    on the GPU and on the CPU engine (the host's cores), run for run; then a timing of one
#    paper-scale batch (200 flows, d=128/h=512, 100 steps) to extrapolate the full Figure 4.
if [ "${SKIP_SWEEP:-0}" != 1 ]; then
  sw=${out:-$(mktemp -d)}
  rm -rf "$sw/sweep-gpu" "$sw/sweep-cpu" "$sw/sweep-full-slice"
  t0=$(date +%s.%N)
  cudaenv timeout 240 gpu-bin/annealvi sweep --config configs/fig4-quick.toml --set grid.device=gpu \
    --set grid.seeds=4 --out "$sw/sweep-gpu" >"$sw/sweep-gpu.log" 2>&1
  src=$?
  t1=$(date +%s.%N)
  timeout 240 gpu-bin/annealvi sweep --config configs/fig4-quick.toml --set grid.seeds=4 \
    --out "$sw/sweep-cpu" >"$sw/sweep-cpu.log" 2>&1
  t2=$(date +%s.%N)
  log "## GPU sweep engine"
  log ""
  [ "$src" -ne 0 ] && log "- GPU engine FAILED (exit $src): $(tail -n 1 "$sw/sweep-gpu.log")"
  log "- quick Figure 4 grid, 4 seeds/cell (84 runs): GPU engine exit $src in $(python3 -c "print(f'{$t1-$t0:.1f}')") s; CPU engine ($(nproc) cores) in $(python3 -c "print(f'{$t2-$t1:.1f}')") s"
  cmp=$(python3 - "$sw" <<'PY'
import json, sys
d = sys.argv[1]
def load(p):
    try:
        return {(r["beta_i"], r["t0"], r["seed"]): r for r in map(json.loads, open(p))}
    except OSError:
        return {}
g, c = load(d + "/sweep-gpu/runs.jsonl"), load(d + "/sweep-cpu/runs.jsonl")
keys = sorted(set(g) & set(c))
same = sum(g[k]["outcome"] == c[k]["outcome"] for k in keys)
dm = sorted(abs((g[k]["light_mode_mass"] or 0) - (c[k]["light_mode_mass"] or 0)) for k in keys)
dk = sorted(abs((g[k]["kl"] or 0) - (c[k]["kl"] or 0)) / max(abs(c[k]["kl"] or 0), 1e-3) for k in keys)
med = lambda v: v[len(v) // 2] if v else float("nan")
# tolerance (docs/gpu.md): f32 on the device vs f64 on the CPU over ~1000 Adam steps
ok = len(keys) == len(c) > 0 and same >= 0.95 * len(keys) and med(dm) <= 0.02 and med(dk) <= 0.05
print(f"GPU vs CPU engine: {len(keys)} common runs of {len(c)}, same outcome in {same}, "
      f"light-mass difference median {med(dm):.4f} max {max(dm or [float('nan')]):.4f}, "
      f"relative KL difference median {med(dk):.2e} max {max(dk or [float('nan')]):.2e}: "
      f"{'within' if ok else 'OUTSIDE'} tolerance")
PY
)
  log "- $cmp"
  case $cmp in *"within tolerance"*) ;; *) status=1 ;; esac
  t3=$(date +%s.%N)
  cudaenv timeout 300 gpu-bin/annealvi sweep --config configs/fig4.toml --set grid.device=gpu \
    --set 'grid.beta_i=[0.1]' --set 'grid.t0=[100]' --set grid.no_annealing=false \
    --set grid.extra_steps=0 --set grid.seeds=200 --out "$sw/sweep-full-slice" >"$sw/sweep-full.log" 2>&1
  frc=$?
  t4=$(date +%s.%N)
  if [ "$frc" -eq 0 ]; then
    log "- paper-scale batch (configs/fig4.toml: 200 flows, d=128/h=512, B=256, 100 steps + outcomes): $(python3 -c "print(f'{$t4-$t3:.1f}')") s; the full Figure 4 has 15.6e6 flow steps = 77800 batch steps of 200 flows: about $(python3 -c "print(f'{($t4-$t3)/100*77800/3600:.1f}')") h at this rate (upper bound: includes start-up and outcomes)"
  else
    log "- paper-scale batch (configs/fig4.toml: 200 flows, 100 steps): FAILED (exit $frc): $(tail -n 1 "$sw/sweep-full.log")"
  fi
  log ""
fi
[ "$status" -eq 0 ] && log "gpu-check: OK" || log "gpu-check: FAILED (see above)"
exit "$status"
