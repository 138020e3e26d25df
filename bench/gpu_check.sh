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
  compute-sanitizer --tool $tool --error-exitcode 9 "$build/tests/taep_tests" \
    --gtest_filter='Gpu.CurandPhiloxStreamEqualsHostMirror:Gpu.PerPathAgreementWithCpu:Backends/Invariance.*/cuda:Gpu.ReversePerPathAgreementWithCpu:Gpu.ReversePathsDoNotDependOnChunking:Gpu.MlpReversePerPathAgreementWithCpu:Gpu.MlpReversePathsDoNotDependOnChunking:GpuTrain.GradientMatchesCpu:GpuTrain.TrainingMatchesCpu:GpuTrain.BitwiseReproducible' \
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

say "== reverse sampling (taep sample --backend cuda): exact-score ring8 collapse, and the trained MLP"
# End to end as `taep sample` reports it (device setup, the reverse kernels, the samples' copy back and
# the host's nearest-mode count; not the CSV). The CSV goes to the build tree, not to $out.
# occupancy_max_z: the largest |fraction - weight| / SE over the modes, against the exact model's
# weights (about 1..3 when sampling is right), or for the MLP against the target's (its fit).
sample_cfg="$out/sample_mlp_ring.json"
cat > "$sample_cfg" <<JSON
{"target": {"preset": "ring8"},
 "model": {"type": "mlp", "weights": "tests/fixtures/ring8_trained.safetensors"}}
JSON
for spec in "cuda-sample::4194304:10000" "cuda-mlp-sample:$sample_cfg:1048576:200"; do
  IFS=: read -r name cfg count steps <<< "$spec"
  "$build/taep" sample $cfg --backend cuda --count "$count" --steps "$steps" --quiet \
    --out "$build/$name.csv" --result "$out/$name.result.json" >> "$log" 2>&1 &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); o=r['occupancy']; w=o['model_weights'] or o['target_weights']; z=max(abs(f-q)/e for f,q,e in zip(o['fractions'],w,o['fraction_stderr']) if e>0); print(json.dumps({'backend': sys.argv[2], 'scheme': 'euler', 'paths': r['samples']['count'], 'steps': r['config']['schedule']['steps'], 'best_path_steps_per_second': r['performance']['path_steps_per_second'], 'occupancy_max_z': z}))" \
      "$out/$name.result.json" "$name" >> "$bench_json" 2>> "$log" || status=1
  rm -f "$build/$name.csv"
done

say "== training (taep train): default 3x128 MLP on ring8, batch 2048; CUDA 5000 steps, CPU 500"
# End to end as `taep train` reports it (steps/s of the training loop; the loss floor estimate and the
# weight file are not timed; the EMA weights go to $out). Rows: paths = optimizer steps,
# path-steps/s = training examples/s, and the check column steps/s.
for spec in cuda:5000 cpu:500; do
  IFS=: read -r be steps <<< "$spec"
  "$build/taep" train --backend "$be" --steps "$steps" --log-every 1000 --quiet \
    --result "$out/train_$be.json" --out "$out/train_$be.safetensors" >> "$log" 2>&1 &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); p=r['performance']; t=r['training']; print(json.dumps({'backend': sys.argv[2], 'scheme': 'dsm', 'paths': t['steps'], 'best_path_steps_per_second': p['examples_per_second'], 'train_steps_per_second': p['steps_per_second'], 'gflops': p['gflops'], 'final_loss': t['final_loss'], 'loss_floor': t['loss_floor']}))" \
      "$out/train_$be.json" "$be-train" >> "$bench_json" 2>> "$log" || { say "taep train --backend $be FAILED (see $log)"; status=1; }
done

# The mode-collapse experiment end to end on the device (wall time per backend is part of the issue's
# record): --quick by default; TAEP_GPU_EXPERIMENT=full runs the paper's settings (compare with
# examples/mode_collapse/, a CPU run). Tables and figures go to $out/mode_collapse_cuda.
say "== experiment mode-collapse (${TAEP_GPU_EXPERIMENT:-quick}) on cuda"
exp_flags=(--quick)
[ "${TAEP_GPU_EXPERIMENT:-quick}" = full ] && exp_flags=()
if "$build/taep" experiment mode-collapse "${exp_flags[@]}" --backend cuda --quiet --no-plots \
     --out-dir "$out/mode_collapse_cuda" >> "$log" 2>&1; then
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('experiment wall time %.1f s on %s' % (r['performance']['wall_seconds'], r['performance']['device']))" \
    "$out/mode_collapse_cuda/mode_collapse.json" | tee -a "$log"
else
  say "taep experiment --backend cuda FAILED (see $log)"; status=1
fi

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
    # Sampling rows have no IFT; they show the largest |fraction - weight| / SE over the modes.
    check = (f"{r['ift']:8.5f}+-{r['ift_stderr']:.5f}" if 'ift' in r
             else f"{'max z ' + format(r['occupancy_max_z'], '.2f'):>16}" if 'occupancy_max_z' in r
             else f"{'steps/s ' + format(r['train_steps_per_second'], '.1f'):>16}" if 'train_steps_per_second' in r
             else f"{'-':>16}")
    print(f"{r['backend']:8} {r['scheme']:9} {r['paths']:10d} {r['best_path_steps_per_second']:13.3e} "
          f"{check} {frac}")
print(f"written {dest}")
PY
exit $status
