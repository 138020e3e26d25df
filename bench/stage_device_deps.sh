#!/usr/bin/env bash
# Run HERE (a machine with the Debian packages) before bench/gpu_check.sh is sent to a GPU machine that
# cannot install packages: copies the header-only dependencies and GoogleTest's source tree into
# .devdeps/ (git-ignored; pass it in the device run's `carry`). Nothing of it is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .devdeps
mkdir -p .devdeps/include
for d in nlohmann CLI xsimd; do
  [ -d "/usr/include/$d" ] && cp -r "/usr/include/$d" .devdeps/include/
done
cp /usr/include/nanoflann.hpp .devdeps/include/  # the coverage metrics (found by find_path)
cp -r /usr/src/googletest .devdeps/googletest
# OpenBLAS (the CPU backend of learned-score models) and the Fortran runtime it needs.
mkdir -p .devdeps/lib
blas=/usr/lib/x86_64-linux-gnu/openblas-pthread
cp "$blas/cblas.h" .devdeps/include/ 2>/dev/null || cp /usr/include/x86_64-linux-gnu/openblas-pthread/*.h .devdeps/include/
cp -L "$blas/libopenblas.so.0" .devdeps/lib/libopenblas.so.0
ln -sf libopenblas.so.0 .devdeps/lib/libopenblas.so
for l in libgfortran.so.5 libquadmath.so.0; do cp -L "/lib/x86_64-linux-gnu/$l" .devdeps/lib/; done
du -sh .devdeps
