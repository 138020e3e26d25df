#!/usr/bin/env bash
# CPU training throughput of `taep train`: the default config (ring8 data, 3x128 SiLU MLP, batch
# 2048, Adam, clipping, EMA) timed over STEPS optimizer steps (default 600) and reported as steps/s
# and GFLOP/s. The flops are the GEMM flops of one step, as TrainProblem::flops_per_step counts them
# (2 per multiply-add: the forward pass, the weight gradients, and the input gradients of every layer
# but the first; the elementwise work is not counted). They are compared with the peak FP32 FMA rate
# measured here, using all cores and 512-bit FMAs where the CPU has AVX-512.
# Cases:
#   all_threads        all cores, OpenBLAS's own choice of kernel
#   one_thread         --threads 1
#   openblas_skylakex  all cores, OPENBLAS_CORETYPE=SkylakeX: OpenBLAS's AVX-512 kernels (only on CPUs
#                      with AVX-512; an environment may force others, e.g. OPENBLAS_CORETYPE=Haswell,
#                      the AVX2 kernels, which the first two cases then use)
#   pytorch            the same training step in PyTorch on the CPU (float32, all cores: PyTorch
#                      would pick 1 thread here by itself), when /usr/bin/python3 has torch
#   pytorch_one_thread the same on one thread (against one_thread: PyTorch's threads meet at a
#                      barrier after every operation, which a busy machine punishes most)
# Every measurement first waits, for at most QUIET_WAIT seconds (default 120), until the machine is
# idle. The best of REPEAT runs (default 3) is kept. Writes bench/results/cpu-train-<date>.json and
# prints a table.
#   bench/run_cpu_train.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
taep="$build/taep"
[ -x "$taep" ] || { echo "run_cpu_train.sh: $taep not found; build first" >&2; exit 2; }
python=/usr/bin/python3
[ -x "$python" ] || python=python3
repeat=${REPEAT:-3}
quiet_wait=${QUIET_WAIT:-120}
steps=${STEPS:-600}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Waits until the CPUs were less than 5% busy over 2 s (at most $quiet_wait s); counts the waits
# that ran out.
not_quiet=0
wait_quiet() {
  local start=$SECONDS a b busy idle
  while :; do
    read -ra a < /proc/stat; sleep 2; read -ra b < /proc/stat
    busy=$(( b[1] + b[2] + b[3] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[6] - a[7] - a[8] ))
    idle=$(( b[4] + b[5] - a[4] - a[5] ))
    (( 100 * busy < 5 * (busy + idle + 1) )) && return 0
    (( SECONDS - start >= quiet_wait )) && { not_quiet=$((not_quiet + 1)); return 0; }
  done
}

# Peak FP32 FMA rate: independent FMA chains in registers on every core (as bench/run_cpu_mlp.sh).
cat > "$tmp/peak.cpp" <<'CPP'
#include <chrono>
#include <cstdio>
#include <cstring>
#include <omp.h>
template <int W>
double fma_seconds(long n) {
  const auto t0 = std::chrono::steady_clock::now();
#define F(r) "vfmadd231ps %%" R "0, %%" R "0, %%" R #r "\n"
  if (W == 512) {
#define R "zmm"
    __asm__ volatile("vxorps %%xmm0, %%xmm0, %%xmm0\n1:\n" F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8)
                     F(9) F(10) F(11) F(12) "dec %0\njnz 1b\n" : "+r"(n) :: "xmm0", "xmm1", "xmm2",
                     "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12");
#undef R
  } else {
#define R "ymm"
    __asm__ volatile("vxorps %%xmm0, %%xmm0, %%xmm0\n1:\n" F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8)
                     F(9) F(10) F(11) F(12) "dec %0\njnz 1b\nvzeroupper\n" : "+r"(n) :: "xmm0", "xmm1",
                     "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                     "xmm12");
#undef R
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
int main(int argc, char** argv) {
  const bool z = argc > 1 && !std::strcmp(argv[1], "512");
  const long n = 200000000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double flops = 0;
#pragma omp parallel reduction(+ : flops)
    flops += 12.0 * (z ? 32 : 16) * n / (z ? fma_seconds<512>(n) : fma_seconds<256>(n));
    if (flops > best) best = flops;
  }
  std::printf("{\"peak_gflops\": %.1f, \"vector_bits\": %d, \"threads\": %d}\n", best / 1e9,
              z ? 512 : 256, omp_get_max_threads());
}
CPP
bits=256
grep -qw avx512f /proc/cpuinfo && bits=512
peak_json=null
if ${CXX:-c++} -O2 -fopenmp "$tmp/peak.cpp" -o "$tmp/peak" 2>/dev/null; then
  wait_quiet
  peak_json=$("$tmp/peak" $bits)
fi

# The PyTorch reference: the same network, examples drawn the same way (torch's own RNG), the same
# loss, Adam, clip_grad_norm_ and EMA; timed over the same number of steps after 20 warm-up steps.
cat > "$tmp/torch_train.py" <<'PY'
import json, math, os, sys, time
import torch
sys.path.insert(0, "tools")
import taep_mlp as tm
steps, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads or os.cpu_count() or 1)  # 0: all cores, as taep's all_threads case
torch.manual_seed(1)
model = tm.TaepScoreMLP(2, hidden=(128, 128, 128), embedding_dim=16, time_scale=100.0)
ema = [p.detach().clone() for p in model.parameters()]
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
means, s2, lw = tm.ring_mixture(dtype=torch.float32)
batch, t_min = 2048, 1e-3
def step():
    t = t_min + (1 - t_min) * torch.rand(batch, dtype=torch.float64)
    ab = tm.abar(t)
    k = torch.multinomial(torch.exp(lw), batch, replacement=True)
    x0 = means[k] + torch.sqrt(s2[k])[:, None] * torch.randn(batch, 2)
    z = torch.randn(batch, 2)
    sab, st = torch.sqrt(ab).float()[:, None], torch.sqrt(1 - ab).float()[:, None]
    xt = sab * x0 + st * z
    loss = ((st * model(xt, t) + z) ** 2).sum(1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, model.parameters()):
            e.lerp_(p, 1e-3)
    return loss
for _ in range(20):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    loss = step()
dt = time.perf_counter() - t0
print(json.dumps({"steps_per_second": steps / dt, "threads": torch.get_num_threads(),
                  "final_loss": float(loss), "torch": torch.__version__}))
PY
have_torch=0
"$python" -c 'import torch' 2>/dev/null && have_torch=1

run_taep() {  # name, extra env, extra flags
  local name=$1 env=$2 flags=$3 r
  for r in $(seq "$repeat"); do
    wait_quiet
    env $env "$taep" train --steps "$steps" --log-every "$steps" $flags --quiet \
      --out "$tmp/$name-$r.safetensors" --result "$tmp/$name-$r.json"
  done
}
run_taep all_threads "" ""
run_taep one_thread "" "--threads 1"
[ "$bits" = 512 ] && run_taep openblas_skylakex "OPENBLAS_CORETYPE=SkylakeX" ""
if [ "$have_torch" = 1 ]; then
  for r in $(seq "$repeat"); do
    wait_quiet
    "$python" "$tmp/torch_train.py" "$steps" 0 > "$tmp/pytorch-$r.json"
    wait_quiet
    "$python" "$tmp/torch_train.py" "$steps" 1 > "$tmp/pytorch_one_thread-$r.json"
  done
fi

out="bench/results/cpu-train-$(date -u +%Y-%m-%d).json"
"$python" - "$tmp" "$out" "$repeat" "$peak_json" "$loadavg_before" "$not_quiet" "$steps" <<'PY'
import datetime, glob, json, os, platform, subprocess, sys
tmp, out, repeat, peak_json, load_before, not_quiet, steps = sys.argv[1:8]
peak = json.loads(peak_json) if peak_json != "null" else None

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                       text=True).stdout.strip()
sps = lambda r: r["performance"]["steps_per_second"]
results, flops = {}, None
for name in ("all_threads", "one_thread", "openblas_skylakex"):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{tmp}/{name}-*.json"))]
    if not runs:
        continue
    best = max(runs, key=sps)
    p = best["performance"]
    flops = p["flops_per_step"]
    row = {"steps_per_second": sps(best), "steps_per_second_runs": [sps(r) for r in runs],
           "examples_per_second": p["examples_per_second"], "gflops": p["gflops"],
           "device": p["device"], "threads": p["threads"],
           "final_loss": best["training"]["final_loss"], "loss_floor": best["training"]["loss_floor"]}
    if peak:
        row["fraction_of_peak"] = p["gflops"] / peak["peak_gflops"]
    results[name] = row
for name, ours in (("pytorch", "all_threads"), ("pytorch_one_thread", "one_thread")):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{tmp}/{name}-*.json"))]
    if not runs:
        continue
    best = max(runs, key=lambda r: r["steps_per_second"])
    results[name] = dict(best, steps_per_second_runs=[r["steps_per_second"] for r in runs],
                         gflops=best["steps_per_second"] * flops / 1e9)
    if peak:
        results[name]["fraction_of_peak"] = results[name]["gflops"] / peak["peak_gflops"]
    results[f"speedup_{ours}_vs_{name}"] = results[ours]["steps_per_second"] / best["steps_per_second"]

record = {
    "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
    "commit": commit + ("+dirty" if dirty else ""),
    "device": f"{cpu_model()}, {os.cpu_count()} logical cores",
    "peak_fp32": peak,
    "loadavg_before": load_before,
    "loadavg_after": " ".join(open("/proc/loadavg").read().split()[:3]),
    "repeats": int(repeat),
    "measurements_started_on_a_busy_machine": int(not_quiet),
    "workload": "taep train default config: ring8, 3x128 SiLU MLP (d=2, E=16), batch 2048, "
                f"Adam + clip 1.0 + EMA; {steps} steps per run",
    "flops_per_step": flops,
    "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
    "notes": "Best of `repeats` runs each. GFLOP/s count the GEMM flops of a step (forward, weight "
             "gradients, input gradients of layers 1..L); the elementwise work (examples, embedding, "
             "SiLU, loss, Adam) is not counted. all_threads and one_thread use the OpenBLAS "
             "kernel of the environment (openblas_coretype_env, else OpenBLAS's detection); "
             "openblas_skylakex forces OpenBLAS's AVX-512 kernels.",
    "results": results,
}
json.dump(record, open(out, "w"), indent=2)
print(f"device: {record['device']}; peak {peak['peak_gflops'] if peak else 'n/a'} GFLOP/s; "
      f"load before {load_before}; busy starts: {not_quiet}")
print(f"{'case':18} {'steps/s':>9} {'GFLOP/s':>8} {'% peak':>7}  device")
for name, r in results.items():
    if not isinstance(r, dict):
        continue
    frac = f"{100 * r['fraction_of_peak']:6.1f}%" if "fraction_of_peak" in r else "    n/a"
    print(f"{name:18} {r['steps_per_second']:9.1f} {r['gflops']:8.1f} {frac}  {r.get('device', 'PyTorch ' + r.get('torch', ''))}")
for key, value in results.items():
    if key.startswith("speedup"):
        print(f"{key}: {value:.2f}")
print(f"written {out}")
PY
