#!/usr/bin/env bash
# Everything a lent GPU machine should show, in one call (device time is short):
#   1. build for sm_90 (Release, tests and benchmarks);
#   2. run the gpu-labelled tests with TAEP_REQUIRE_GPU=1 (skips become failures);
#   3. run compute-sanitizer (memcheck, racecheck, initcheck) over the GPU tests;
#   4. run the throughput benchmark on CPU and CUDA, Euler and Milstein;
#   5. print a short table and write bench/results-style JSON into $OUT (or bench/results/).
# Prepare here first: bench/stage_device_deps.sh (carries headers and GoogleTest's source), then
#   device run: command "bash bench/gpu_check.sh", carry [".devdeps"].
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results}
mkdir -p "$out"
build=build-gpu
log="$out/gpu_check.log"
: > "$log"
say() { echo "$@" | tee -a "$log"; }
status=0

say "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee -a "$log"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)

say "== build (sm_90)"
deps=()
if [ -d .devdeps ]; then
  deps=(-DCMAKE_INCLUDE_PATH="$PWD/.devdeps/include" -DCMAKE_LIBRARY_PATH="$PWD/.devdeps/lib"
        -DTAEP_GTEST_SOURCE_DIR="$PWD/.devdeps/googletest")
  export LD_LIBRARY_PATH="$PWD/.devdeps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ! { cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
         -DTAEP_ENABLE_CUDA=ON "${deps[@]}" && cmake --build "$build" -j"$(nproc)"; } >> "$log" 2>&1; then
  say "build FAILED (see $log)"
  tail -40 "$log"
  exit 1
fi

say "== gpu tests (TAEP_REQUIRE_GPU=1)"
TAEP_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu --output-on-failure -j1 > "$out/gpu_tests.log" 2>&1
tests_rc=$?
grep -E "tests passed|tests failed" "$out/gpu_tests.log" | tee -a "$log"
[ $tests_rc -eq 0 ] || { status=1; grep -E "Failed|FAILED|Failure" "$out/gpu_tests.log" | head -20 | tee -a "$log"; }

say "== compute-sanitizer"
san_summary=""
for tool in memcheck racecheck initcheck synccheck; do
  compute-sanitizer --tool $tool --error-exitcode 9 "$build/tests/taep_gpu_tests" \
    --gtest_filter='Gpu.CurandPhiloxStreamEqualsHostMirror:Gpu.PerPathAgreementWithCpu:Gpu.ChunkingDoesNotChangeResults' \
    > "$out/sanitizer_$tool.log" 2>&1
  rc=$?
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer_$tool.log" | tail -1)
  say "$tool: rc=$rc ${summary}"
  san_summary="$san_summary\"$tool\": {\"rc\": $rc, \"summary\": \"${summary}\"}, "
  [ $rc -eq 0 ] || status=1
done

say "== benchmark"
bench_json="$out/bench_raw.jsonl"
: > "$bench_json"
for scheme in euler milstein; do
  "$build/bench/taep_bench" --backend cuda --steps 1000 --paths 16777216 --scheme $scheme --repeat 3 >> "$bench_json" 2>> "$log" || status=1
  "$build/bench/taep_bench" --backend cpu --steps 1000 --paths 1048576 --scheme $scheme --repeat 2 >> "$bench_json" 2>> "$log" || status=1
done

say "== learned-score (MLP) benchmark: ring8, trained 3x128 MLP, exact divergence"
mlp_cfg="$out/mlp_ring.json"
for math in fp32 tf32; do
  cat > "$mlp_cfg" <<JSON
{"target": {"preset": "ring8"},
 "model": {"type": "mlp", "weights": "tests/fixtures/ring8_trained.safetensors", "math": "$math"},
 "schedule": {"steps": 200}, "run": {"paths": 1048576, "backend": "cuda"}}
JSON
  "$build/taep" run "$mlp_cfg" --quiet --out "$out/mlp_ring_$math.result.json" >> "$log" 2>&1 || status=1
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; print(json.dumps({'backend': 'cuda-mlp-$math', 'scheme': 'euler', 'paths': r['taep']['count'], 'best_path_steps_per_second': p['path_steps_per_second'], 'ift': r['ift']['estimate'], 'ift_stderr': r['ift']['stderr']}))" \
    "$out/mlp_ring_$math.result.json" >> "$bench_json" 2>> "$log" || status=1
done
python3 bench/reference/pytorch_taep.py --device cuda --paths 1048576 --steps 200 > "$out/pytorch_cuda.json" 2>> "$log" &&
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({'backend': 'pytorch-cuda-mlp', 'scheme': 'euler', 'paths': r['paths'], 'best_path_steps_per_second': r['path_steps_per_second'], 'ift': r['ift_estimate'], 'ift_stderr': r['ift_stderr']}))" \
    "$out/pytorch_cuda.json" >> "$bench_json" 2>> "$log" || say "pytorch cuda reference failed (see $log)"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$bench_json" "$out/gpu-$(date -u +%Y-%m-%d).json" "$gpu" "$commit" "$tests_rc" "{${san_summary%, }}" <<'PY' | tee -a "$log"
import json, sys, datetime
raw, dest, gpu, commit, tests_rc, san = sys.argv[1:7]
rows = [json.loads(l) for l in open(raw) if l.strip()]
# Work per path-step of the ring8 shared-component model (d = 2, K = 8), counted from
# physics/mixture.hpp and forward_taep.hpp: ~270 FP32 instructions and 8 exp + ~3 MUFU (RNG) per step.
fp32_per_step, mufu_per_step = 270, 11
peak = {'H100': (33.5e12, 4.2e12), 'H200': (33.5e12, 4.2e12)}  # FP32 instr/s (FMA=1), MUFU op/s
key = next((k for k in peak if k in gpu), None)
for r in rows:
    if r['backend'] == 'cuda' and key:
        fp, mu = peak[key]
        r['fraction_fp32_issue'] = r['best_path_steps_per_second'] * fp32_per_step / fp
        r['fraction_mufu'] = r['best_path_steps_per_second'] * mufu_per_step / mu
record = {'date': datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ'), 'commit': commit,
          'device': gpu, 'gpu_tests_rc': int(tests_rc), 'sanitizer': json.loads(san), 'bench': rows}
json.dump(record, open(dest, 'w'), indent=2)
print(f"{'backend':8} {'scheme':9} {'paths':>10} {'path-steps/s':>13} {'IFT':>16} {'frac FP32':>9}")
for r in rows:
    frac = f"{r.get('fraction_fp32_issue', 0):9.2f}" if 'fraction_fp32_issue' in r else f"{'-':>9}"
    print(f"{r['backend']:8} {r['scheme']:9} {r['paths']:10d} {r['best_path_steps_per_second']:13.3e} "
          f"{r['ift']:8.5f}+-{r['ift_stderr']:.5f} {frac}")
print(f"written {dest}")
PY
exit $status
