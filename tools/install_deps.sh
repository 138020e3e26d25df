#!/usr/bin/env bash
# Installs what taep needs to build and test on Debian/Ubuntu (run as root or with sudo available).
# The CUDA toolkit is not installed here: taep builds its CUDA backend when nvcc is found.
# With --fuzz it also installs what the fuzz targets need (tests/fuzz, TAEP_BUILD_FUZZERS): clang,
# its libFuzzer and sanitizer runtimes, and its OpenMP (configure finds OpenMP for the compiler).
set -euo pipefail
packages=(cmake ninja-build g++ libgtest-dev nlohmann-json3-dev libcli11-dev libxsimd-dev libopenblas-dev python3-numpy python3-matplotlib)
if [ "${1:-}" = --fuzz ]; then
  packages+=(clang-14 libclang-rt-14-dev libomp-14-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nvcc lives outside PATH on many machines.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "note: nvcc found at /usr/local/cuda/bin; add it to PATH to build the CUDA backend" >&2
fi
