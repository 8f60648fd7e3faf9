#!/usr/bin/env bash
# Builds the GPU binaries here (no CUDA toolkit needed: cudarc loads libcuda, NVRTC and cuBLAS at
# run time) and copies them to gpu-bin/ (git-ignored), for scripts/gpu-check.sh on a GPU machine
# that has no Rust toolchain:
#   gpu-bin/annealvi   the CLI with feature gpu (`annealvi bench flow-gpu ...`)
#   gpu-bin/gpu_test   the tests/gpu.rs test binary (run it with --nocapture)
# Rust code is linked statically; the binaries need only glibc (checked below).
#
# usage: scripts/build-gpu-bin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features gpu --bin annealvi
test_exe=$(cargo test --release --features gpu --test gpu --no-run --message-format=json \
  | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "gpu" \
            and m.get("executable"):
        print(m["executable"])
')
if [ -z "$test_exe" ]; then
  echo "build-gpu-bin: could not find the tests/gpu.rs executable" >&2
  exit 1
fi
mkdir -p gpu-bin
cp target/release/annealvi gpu-bin/annealvi
cp "$test_exe" gpu-bin/gpu_test
git rev-parse HEAD >gpu-bin/COMMIT 2>/dev/null || true
for b in gpu-bin/annealvi gpu-bin/gpu_test; do
  echo "$b: $(du -h "$b" | cut -f1), needs glibc $(objdump -T "$b" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)"
  ldd "$b" | sed 's/^/    /'
done
echo "built from $(cat gpu-bin/COMMIT 2>/dev/null || echo '?'); carry gpu-bin/ to the GPU machine and run scripts/gpu-check.sh"
