#!/usr/bin/env bash
# Installs what taep needs to build and test on Debian/Ubuntu (run as root or with sudo available).
# The CUDA toolkit is not installed here: taep builds its CUDA backend when nvcc is found. Open MPI
# (libopenmpi-dev, openmpi-bin) is: taep builds for MPI ranks when it finds an MPI (TAEP_ENABLE_MPI).
# With --fuzz it also installs what the fuzz targets need (tests/fuzz, TAEP_BUILD_FUZZERS): clang,
# its libFuzzer and sanitizer runtimes, and its OpenMP (configure finds OpenMP for the compiler).
set -euo pipefail
# With --torch it also installs Debian's python3-torch (1.13, CPU; about 77 MB to fetch, 68 s to
# install, 765 MB on disk) for the Python suite's taep.torch test (tests/python/test_torch.py), which
# runs in the interpreter the extension is built for when it imports torch, else under Debian's
# /usr/bin/python3 when that is the same Python minor version (test_torch_elsewhere.py; with Debian's
# python3-pytest for it). CI (CI=true) gets them without the flag, so that the test runs there.
# libnanoflann-dev: the k-d trees of the coverage metrics (docs/coverage.md); python3-sklearn: the
# digits data of tools/export_digits.py (it runs under Debian's python3, /usr/bin/python3).
packages=(cmake ninja-build g++ libgtest-dev nlohmann-json3-dev libcli11-dev libxsimd-dev libopenblas-dev zlib1g-dev python3-numpy python3-matplotlib
          python3-sklearn libnanoflann-dev
          python3-dev python3-pip libopenmpi-dev openmpi-bin)
for flag in "$@"; do
  case "$flag" in
    --fuzz) packages+=(clang-14 libclang-rt-14-dev libomp-14-dev) ;;
    --torch) packages+=(python3-torch python3-pytest) ;;
    *) echo "install_deps.sh: unknown option $flag (allowed: --fuzz, --torch)" >&2; exit 2 ;;
  esac
done
[ "${CI:-}" = true ] && packages+=(python3-torch python3-pytest)
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
# The Python package (python/, docs/python.md) builds with nanobind and is tested with pytest, both
# from PyPI, into the `python3` on PATH: the interpreter CMake picks (CMakeLists.txt, Python_EXECUTABLE).
# Only what that interpreter cannot import yet is installed. Debian's own python3 is "externally
# managed" (PEP 668); PIP_BREAK_SYSTEM_PACKAGES lets pip add packages to it, as CI needs.
py_missing=()
for m in nanobind:nanobind scikit_build_core:scikit-build-core pytest:pytest numpy:numpy; do
  python3 -c "import ${m%%:*}" 2>/dev/null || py_missing+=("${m#*:}")
done
if [ ${#py_missing[@]} -gt 0 ]; then
  pip_user=()
  if [ "$(id -u)" -ne 0 ] && python3 -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)'; then
    pip_user=(--user)
  fi
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    python3 -m pip install --quiet "${pip_user[@]}" "${py_missing[@]}"
fi
