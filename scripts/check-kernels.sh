#!/usr/bin/env bash
# Syntax and type check of the NVRTC kernel source (src/family/realnvp_gpu.cu) with the host C++
# compiler and a small shim for the CUDA keywords it uses; no CUDA toolkit needed. This catches
# typos and type errors, not device-specific problems (NVRTC compiles the source on the GPU
# machine at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/shim.cu.cpp" <<'SHIM'
#include <math.h>
#define __global__
#define __device__ static inline
struct Dim3 { unsigned int x, y, z; };
static Dim3 blockIdx, blockDim, threadIdx;
SHIM
cat src/family/realnvp_gpu.cu >>"$tmp/shim.cu.cpp"
${CXX:-g++} -std=c++17 -fsyntax-only -Wall -Wextra -Werror -Wno-unused-function "$tmp/shim.cu.cpp"
echo "kernels: syntax ok ($(grep -c '__global__ void' src/family/realnvp_gpu.cu) kernels)"
