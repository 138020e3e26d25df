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
. bench/lib.sh
taep="${1:-build}/taep"
bench_setup run_cpu_train.sh "$taep"
repeat=${REPEAT:-3}
steps=${STEPS:-600}

measure_peak_fp32

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
bench_report "$tmp" "$out" "$repeat" "$peak_json" "$loadavg_before" "$not_quiet" "$steps" <<'PY'
tmp, out, repeat, peak_json, load_before, not_quiet, steps = sys.argv[1:8]
peak = json.loads(peak_json) if peak_json != "null" else None

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
    **measurement_provenance(peak, load_before, repeat, not_quiet),
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
