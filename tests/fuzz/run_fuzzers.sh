#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (README.md, "Fuzzing and fault tests"):
#   tests/fuzz/run_fuzzers.sh BUILD_DIR [SECONDS] [TARGET...]
# BUILD_DIR is a tree configured with -DTAEP_BUILD_FUZZERS=ON and clang, its fuzz targets built.
# New corpus entries go to BUILD_DIR/fuzz/corpus/<target> (never into the source tree); a finding
# (crash, sanitizer report, uncaught exception, timeout, memory blowup) is saved under
# BUILD_DIR/fuzz/findings/<target>/, printed with the command that reproduces it, and makes the
# script exit 1.
set -uo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:?usage: run_fuzzers.sh BUILD_DIR [SECONDS] [TARGET...]}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config weights samples)

# Per target: the longest input (the weights target's seeds include the 30 kB d = 16 fixture; the
# samples target puts each input behind a 64 kB comment itself) and its dictionary.
declare -A max_len=([config]=4096 [weights]=32768 [samples]=4096)
declare -A dict=([config]=config.dict [weights]=weights.dict)
# A hang is an input that takes over 10 s; a blowup is over 2 GB resident or one allocation past it.
common=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
# Stack traces name functions when a symbolizer is installed (package llvm-14).
for s in llvm-symbolizer /usr/lib/llvm-14/bin/llvm-symbolizer; do
  if command -v "$s" >/dev/null; then export ASAN_SYMBOLIZER_PATH="$(command -v "$s")"; break; fi
done
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"

failed=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/taep_fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin is not built" >&2; exit 2; }
  corpus="$build/fuzz/corpus/$t" findings="$build/fuzz/findings/$t" seeds=("$src/tests/fuzz/corpus/$t")
  rm -rf "$findings"
  mkdir -p "$corpus" "$findings"
  if [ "$t" = weights ]; then  # the weight fixtures seed it as they are, not copied into the corpus
    mkdir -p "$build/fuzz/seeds/weights"
    cp "$src"/tests/fixtures/*.safetensors "$build/fuzz/seeds/weights/"
    seeds+=("$build/fuzz/seeds/weights")
  fi
  opts=("${common[@]}" -max_len="${max_len[$t]}" -artifact_prefix="$findings/")
  [ -n "${dict[$t]:-}" ] && opts+=(-dict="$src/tests/fuzz/${dict[$t]}")
  log="$build/fuzz/$t.log"
  start=$(date +%s)
  "$bin" "${opts[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  stats=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz: $t: ${stats:-?} inputs in $(( $(date +%s) - start )) s, exit $rc"
  if [ $rc -ne 0 ] || compgen -G "$findings/*" >/dev/null; then
    failed=1
    echo "fuzz: FINDING in target $t; the fuzzer's report:" >&2
    grep -avE '^(#[0-9]+|\s*"|INFO:|MS:|\*\*\*)' "$log" | tail -60 >&2
    for f in "$findings"/*; do
      [ -e "$f" ] || continue
      echo "fuzz: reproducer $f ($(stat -c %s "$f") bytes), base64:" >&2
      head -c 4096 "$f" | base64 >&2
      echo "fuzz: reproduce with: $bin $f" >&2
      echo "fuzz: keep it as a regression test: cp $f tests/fuzz/corpus/$t/<what-it-is>" >&2
    done
  fi
done
exit $failed
