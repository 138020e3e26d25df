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
cp -r /usr/src/googletest .devdeps/googletest
du -sh .devdeps
