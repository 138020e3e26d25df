#!/usr/bin/env bash
# Everything a lent GPU machine should show, in one call of at most 10 minutes (device time is short).
#
#   bash bench/gpu_check.sh            on the GPU machine (prepare here first: bench/stage_device_deps.sh,
#                                      then device run "bash bench/gpu_check.sh", carry [".devdeps"])
#   bash bench/gpu_check.sh --dry-run  anywhere, no GPU (CI runs it): every stage but the device steps,
#                                      on an existing build (BUILD_DIR, default build/) with the CPU
#                                      backend and small sizes, so the script, its parsing and its
#                                      summary cannot rot unseen
#
# Stages, in this order, each under its own time limit (a stage that fails or runs out is recorded and
# the next one runs; a limit is a ceiling, not an estimate):
#   device     nvidia-smi: name, clocks, memory                                   10 s
#   build      Release, sm_90 only, tests and benchmarks                          240 s
#   sass       bench/sass_count.py: instructions per path-step of every kernel     60 s
#   gpu_tests  the gpu-labelled tests with TAEP_REQUIRE_GPU=1 (skips fail)        150 s
#   bench      throughput: mixture Euler/Milstein, MLP fp32/tf32, sampling, train, the empirical
#              reference (N = 1797, d = 64) with an exact model and with a d = 64 network,
#              and the same run over 1..G GPUs (run.devices)                         120 s
#   summary    summary.json (the record for bench/results/), utilisation from SASS
#   memcheck, racecheck  compute-sanitizer on a reduced GPU test set            60 s each
# $OUT then holds three files: summary.json, gpu_check.log (what was printed) and gpu_check.tar.gz
# (every stage's log and raw output), well under the 8 files a device call brings back.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
if [ $dry = 1 ]; then
  build=${BUILD_DIR:-build}
  backend=cpu
else
  build=build-gpu
  backend=cuda
fi
[ -d .devdeps ] && export LD_LIBRARY_PATH="$PWD/.devdeps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out=${OUT:-$build/gpu-check}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$out/gpu_check.log"
: > "$log"
say() { echo "$@" | tee -a "$log"; }
stages="$work/stages.jsonl"
: > "$stages"
status=0
export build backend dry work

# stage NAME LIMIT_SECONDS FUNCTION: runs FUNCTION (defined below, exported) under the limit, its
# output in $work/NAME.log, and records {name, rc, seconds, timed_out} in stages.jsonl.
stage() {
  local name=$1 limit=$2 fn=$3 t0 rc
  t0=$(date +%s)
  say "== $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" bash -c "$fn" > "$work/$name.log" 2>&1
  rc=$?
  local secs=$(( $(date +%s) - t0 ))
  local timed_out=false
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && timed_out=true
  echo "{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $secs, \"timed_out\": $timed_out}" >> "$stages"
  tail -5 "$work/$name.log" | sed 's/^/   /' | tee -a "$log"
  say "   -> rc $rc in ${secs} s$([ "$timed_out" = true ] && echo ' (time limit)')"
  [ $rc -eq 0 ] || status=1
}

# A device step: run it, or in a dry run show what would run.
device() {
  if [ "$dry" = 1 ]; then echo "dry run: would run: $*"; else "$@"; fi
}
export -f device

stage_device() {
  if [ "$dry" = 1 ]; then
    echo "dry run: no device" > "$work/device.txt"
  else
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
      | tee "$work/device.txt"
  fi
}

stage_build() {
  if [ "$dry" = 1 ]; then
    [ -x "$build/taep" ] && [ -x "$build/tests/taep_tests" ] && [ -x "$build/bench/taep_bench" ] ||
      { echo "no build in $build (taep, tests/taep_tests, bench/taep_bench)"; exit 1; }
    echo "dry run: using the build in $build"
    return
  fi
  local deps=()
  if [ -d .devdeps ]; then
    deps=(-DCMAKE_INCLUDE_PATH="$PWD/.devdeps/include" -DCMAKE_LIBRARY_PATH="$PWD/.devdeps/lib"
          -DTAEP_GTEST_SOURCE_DIR="$PWD/.devdeps/googletest")
  fi
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DTAEP_ENABLE_CUDA=ON "${deps[@]}" && cmake --build "$build" -j"$(nproc)"
}

stage_sass() {
  # --check: the ring's budgets per path-step and no local memory in a forward step loop (issue 15)
  BUILD_DIR="$build" python3 bench/sass_count.py --json "$work/sass.json" --check
}

stage_gpu_tests() {
  if [ "$dry" = 1 ]; then
    # The label set the device run uses must exist and be non-empty.
    ctest --test-dir "$build" -N -L gpu | tee "$work/gpu_tests_list.txt"
    grep -q "Total Tests: [1-9]" "$work/gpu_tests_list.txt"
    return
  fi
  TAEP_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu --output-on-failure -j1
}

# One JSON row per measurement on stdout ($work/bench.jsonl). Sizes: the device's, or small ones
# for the dry run (the same commands and parsing on the CPU backend).
stage_bench() {
  local rows="$work/bench.jsonl" scale=1
  : > "$rows"
  [ "$dry" = 1 ] && scale=256
  local fail=0
  for scheme in euler milstein; do
    "$build/bench/taep_bench" --backend "$backend" --steps 1000 --paths $((16777216 / scale)) \
      --scheme $scheme --repeat 3 >> "$rows" || fail=1
  done
  for math in fp32 tf32; do
    cat > "$work/mlp_$math.json" <<JSON
{"target": {"preset": "ring8"},
 "model": {"type": "mlp", "weights": "tests/fixtures/ring8_trained.safetensors", "math": "$math"},
 "schedule": {"steps": 200}, "run": {"paths": $((1048576 / scale)), "backend": "$backend"}}
JSON
    "$build/taep" run "$work/mlp_$math.json" --quiet --out "$work/mlp_$math.result.json" &&
      python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; print(json.dumps({'backend': sys.argv[2], 'scheme': 'euler', 'paths': r['taep']['count'], 'best_path_steps_per_second': p['path_steps_per_second'], 'ift': r['ift']['estimate'], 'ift_stderr': r['ift']['stderr']}))" \
        "$work/mlp_$math.result.json" "$backend-mlp-$math" >> "$rows" || fail=1
  done
  "$build/taep" sample --backend "$backend" --count $((4194304 / scale)) --steps 1000 --quiet \
    --out /dev/null --result "$work/sample.result.json" &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); o=r['occupancy']; w=o['model_weights'] or o['target_weights']; z=max(abs(f-q)/e for f,q,e in zip(o['fractions'],w,o['fraction_stderr']) if e>0); print(json.dumps({'backend': sys.argv[2], 'scheme': 'euler', 'paths': r['samples']['count'], 'best_path_steps_per_second': r['performance']['path_steps_per_second'], 'occupancy_max_z': z}))" \
      "$work/sample.result.json" "$backend-sample" >> "$rows" || fail=1
  "$build/taep" train --backend "$backend" --steps $((5000 / scale + 20)) --log-every 1000 --quiet \
    --result "$work/train.result.json" --out "$work/train.safetensors" &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; t=r['training']; print(json.dumps({'backend': sys.argv[2], 'scheme': 'dsm', 'paths': t['steps'], 'best_path_steps_per_second': p['examples_per_second'], 'train_steps_per_second': p['steps_per_second'], 'final_loss': t['final_loss']}))" \
      "$work/train.result.json" "$backend-train" >> "$rows" || fail=1
  # The empirical reference (docs/real-data.md): N = 1797 rows of d = 64 (drawn by taep itself
  # from an 8-component d = 64 mixture, so no data package is needed), an exact collapse model: the
  # kernels' runtime-K path over the rows.
  python3 -c "import json,random; random.seed(64); m=[[random.gauss(0,1) for _ in range(64)] for _ in range(8)]; print(json.dumps({'target': {'weights': [1]*8, 'means': m, 'sigmas': [0.3]*8}, 'schedule': {'steps': 50}}))" \
    > "$work/rows_mixture.json" &&
    "$build/taep" sample "$work/rows_mixture.json" --backend "$backend" --count 1797 --quiet --out "$work/rows.npy" &&
    python3 -c "import json,sys; print(json.dumps({'target': {'samples': sys.argv[1]}, 'model': {'collapse': {'modes': 1, 'eps': 0.5}}, 'schedule': {'steps': 200}, 'run': {'paths': int(sys.argv[2]), 'backend': sys.argv[3]}, 'histogram': {'range': [-1e4, 1e4]}}))" \
      "$work/rows.npy" $((262144 / scale)) "$backend" > "$work/empirical.json" &&
    "$build/taep" run "$work/empirical.json" --quiet --out "$work/empirical.result.json" &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; print(json.dumps({'backend': sys.argv[2], 'scheme': 'euler', 'paths': r['taep']['count'], 'rows': 1797, 'd': 64, 'flop_per_path_step': (12*64+8)*1797, 'best_path_steps_per_second': p['path_steps_per_second']}))" \
      "$work/empirical.result.json" "$backend-empirical" >> "$rows" || fail=1
  # Hutchinson TAEP of a d = 64 network (2 x 256, trained here on those rows) against the empirical
  # score: the MLP backend's step-synchronous path with the rows' mixture per path-step.
  python3 -c "import json,sys; print(json.dumps({'data': {'samples': sys.argv[1]}, 'network': {'hidden': [256, 256]}, 'optimizer': {'steps': int(sys.argv[2]), 'batch': 256}, 'run': {'backend': sys.argv[3]}}))" \
      "$work/rows.npy" $((2000 / scale + 20)) "$backend" > "$work/rows_train.json" &&
    "$build/taep" train "$work/rows_train.json" --quiet --out "$work/rows_net.safetensors" &&
    python3 -c "import json,sys; print(json.dumps({'target': {'samples': sys.argv[1]}, 'model': {'type': 'mlp', 'weights': sys.argv[2], 'divergence': 'hutchinson', 'probes': 2}, 'schedule': {'steps': 200}, 'run': {'paths': int(sys.argv[3]), 'backend': sys.argv[4]}, 'histogram': {'range': [-1e6, 1e6]}}))" \
      "$work/rows.npy" "$work/rows_net.safetensors" $((65536 / scale)) "$backend" > "$work/rows_mlp.json" &&
    "$build/taep" run "$work/rows_mlp.json" --quiet --out "$work/rows_mlp.result.json" &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; print(json.dumps({'backend': sys.argv[2], 'scheme': 'euler', 'paths': r['taep']['count'], 'rows': 1797, 'd': 64, 'probes': 2, 'best_path_steps_per_second': p['path_steps_per_second']}))" \
      "$work/rows_mlp.result.json" "$backend-mlp-vs-empirical" >> "$rows" || fail=1
  # Strong scaling over the machine's GPUs in one process (run.devices; docs/distributed.md): the
  # same run on 1..G devices. The dry run uses 2 CPU backends.
  local gpus=2
  [ "$dry" = 1 ] || gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 1)
  for n in $(seq 1 "$gpus"); do
    "$build/taep" run --backend "$backend" --paths $((67108864 / scale)) --steps 1000 --quiet       --set run.devices=$n --out "$work/devices_$n.result.json" &&
      python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; print(json.dumps({'backend': sys.argv[2], 'scheme': 'euler', 'devices': int(sys.argv[3]), 'paths': r['taep']['count'], 'best_path_steps_per_second': p['path_steps_per_second'], 'wall_seconds': p['wall_seconds']}))" \
        "$work/devices_$n.result.json" "$backend-devices" "$n" >> "$rows" || fail=1
  done
  cat "$rows"
  exit $fail
}

# The reduced set the sanitizers run (each test small; the whole set runs in seconds natively).
sanitized='Gpu.CurandPhiloxStreamEqualsHostMirror:Gpu.PerPathAgreementWithCpu:Gpu.ReversePerPathAgreementWithCpu:Gpu.MlpReversePerPathAgreementWithCpu:GpuTrain.GradientMatchesCpu'
export sanitized
stage_memcheck() {
  device compute-sanitizer --tool memcheck --error-exitcode 9 "$build/tests/taep_tests" \
    --gtest_filter="$sanitized"
}
stage_racecheck() {
  device compute-sanitizer --tool racecheck --error-exitcode 9 "$build/tests/taep_tests" \
    --gtest_filter="$sanitized"
}
export -f stage_device stage_build stage_sass stage_gpu_tests stage_bench stage_memcheck stage_racecheck

summary() {
  local commit
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  python3 - "$work" "$out/summary.json" "$commit" "$dry" <<'PY' | tee -a "$log"
import datetime, json, os, sys
work, dest, commit, dry = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
def rows(name):
    p = os.path.join(work, name)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
device = open(os.path.join(work, "device.txt")).read().strip() if os.path.exists(os.path.join(work, "device.txt")) else ""
sass = json.load(open(os.path.join(work, "sass.json"))) if os.path.exists(os.path.join(work, "sass.json")) else None
# Issue slots per second: SMs x 4 schedulers x max SM clock (one warp instruction each per clock,
# 32 path-steps' worth of one thread's instruction). Hopper parts by name; others unknown.
sms = {"H200": 132, "H100 SXM": 132, "H100 80GB HBM3": 132, "H100 PCIe": 114, "H100 NVL": 132}
sm = next((n for k, n in sms.items() if k in device), None)
clock_mhz = None
try:
    clock_mhz = float(device.split(",")[3].split()[0])
except (IndexError, ValueError):
    pass
bench = rows("bench.jsonl")
per_step = None
if sass:
    c = sass.get("ring", {}).get("shared") or {}
    per_step = c.get("instructions_per_path_step")
for r in bench:
    if sm and clock_mhz and per_step and r["backend"] == "cuda" and r.get("scheme") == "euler":
        slots = sm * 4 * clock_mhz * 1e6 * 32  # thread-instructions per second
        r["issue_utilisation"] = r["best_path_steps_per_second"] * per_step / slots
record = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "commit": commit, "dry_run": dry, "device": device or None,
          "stages": rows("stages.jsonl"), "bench": bench,
          "sass_cases": sass["cases"] if sass else None}
json.dump(record, open(dest, "w"), indent=1)
print(f"{'backend':18} {'scheme':9} {'paths':>10} {'path-steps/s':>13} {'check':>18} {'issue':>6}")
for r in bench:
    check = (f"IFT {r['ift']:.4f}+-{r['ift_stderr']:.4f}" if "ift" in r
             else f"max z {r['occupancy_max_z']:.2f}" if "occupancy_max_z" in r
             else f"steps/s {r['train_steps_per_second']:.1f}" if "train_steps_per_second" in r else "-")
    util = f"{r['issue_utilisation']:6.2f}" if "issue_utilisation" in r else f"{'-':>6}"
    print(f"{r['backend']:18} {r['scheme']:9} {r['paths']:10d} {r['best_path_steps_per_second']:13.3e} {check:>18} {util}")
for s in record["stages"]:
    print(f"stage {s['name']:10} rc {s['rc']:3d} {s['seconds']:4d} s{'  TIME LIMIT' if s['timed_out'] else ''}")
print(f"written {dest}")
PY
}

stage device 10 stage_device
stage build 240 stage_build
stage sass 60 stage_sass
stage gpu_tests 150 stage_gpu_tests
stage bench 120 stage_bench
say "== summary"
summary
stage memcheck 60 stage_memcheck
stage racecheck 60 stage_racecheck
say "== summary (with the sanitizers)"
summary
tar czf "$out/gpu_check.tar.gz" -C "$work" .
say "$out: $(ls "$out" | tr '\n' ' ')($(ls "$out" | wc -l) files)"
exit $status
