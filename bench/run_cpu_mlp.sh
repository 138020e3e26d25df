#!/usr/bin/env bash
# CPU throughput of the learned-score (MLP) models: taep's CPU backend against the PyTorch CPU
# implementation of the same integrator (bench/reference/pytorch_taep.py: float32, divergence by
# forward-mode tangents), measured in the same run, same paths and steps, all cores for both:
#   (a) ring: the 2D ring8 target with the trained 3x128 SiLU MLP (tests/fixtures/ring8_trained),
#       exact divergence;
#   (b) d64:  d = 64, the random 3x128 MLP and 8-component mixture of pytorch_taep.py --dim 64, one
#       Rademacher Hutchinson probe per step. The script exports that MLP (tools/taep_mlp.py, seed
#       64, as pytorch_taep.py builds it) and writes a taep config with the same target; both
#       programs then read the same weight file.
# taep is timed two ways: `taep run CONFIG` with a fixed histogram range and with the default
# automatic range (whose pilot paths are the run's own first paths, reduced on the host; before
# that was fixed the pilot re-simulated them, and the two numbers differed twofold). FLOP/s count the network's multiply-adds (forward, plus the tangents: exact d x the hidden
# GEMMs and the output diagonal, Hutchinson P x every layer), 2 FLOP each, against the peak FP32 FMA
# rate measured here (all cores, 512-bit FMAs where the CPU has AVX-512).
# Writes bench/results/cpu-mlp-<date>.json and prints a table.
# Every measurement first waits (up to QUIET_WAIT seconds, default 120) for the machine to be idle,
# and the best of REPEAT runs (default 3) is kept: other processes on a small machine slow a run
# down, PyTorch's two threads, which meet at a barrier after every operation, most of all.
#   bench/run_cpu_mlp.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
taep="${1:-build}/taep"
bench_setup run_cpu_mlp.sh "$taep" torch numpy
"$python" -c 'import torch, numpy' || { echo "run_cpu_mlp.sh: needs python3 with torch and numpy" >&2; exit 2; }
repeat=${REPEAT:-3}
paths=16384
steps=200

measure_peak_fp32

# Configs: (a) ring; (b) d = 64, model and target exported from pytorch_taep.py's own builders.
"$python" - "$tmp" "$paths" "$steps" <<'PY'
import json, math, os, sys
tmp, paths, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path[:0] = ["bench/reference", "tools"]
import torch
import pytorch_taep as pt
import taep_mlp as tm
torch.manual_seed(64)                      # exactly as pytorch_taep.py builds its --dim 64 model
tm.export_safetensors(tm.TaepScoreMLP(64), f"{tmp}/mlp_d64.safetensors")
_, means, s2, lw, _ = pt.make_target(64, torch.float32, torch.device("cpu"))
run = {"paths": paths, "backend": "cpu"}
ring = {"target": {"preset": "ring8"},
        "model": {"type": "mlp", "weights": "tests/fixtures/ring8_trained.safetensors"},
        "schedule": {"steps": steps}, "run": run}
d64 = {"target": {"weights": torch.exp(lw).tolist(), "means": means.tolist(),
                  "sigmas": torch.sqrt(s2).tolist()},
       "model": {"type": "mlp", "weights": f"{tmp}/mlp_d64.safetensors", "divergence": "hutchinson",
                 "probes": 1, "probe_distribution": "rademacher"},
       "schedule": {"steps": steps}, "run": run}
for name, cfg in (("ring", ring), ("d64", d64)):
    json.dump(cfg, open(f"{tmp}/{name}-auto.json", "w"))
    fixed = dict(cfg, histogram={"bins": 200, "range": [-1e4, 1e4]})
    json.dump(fixed, open(f"{tmp}/{name}-fixed.json", "w"))
PY

for r in $(seq "$repeat"); do
  for case in ring d64; do
    wait_quiet
    "$taep" run "$tmp/$case-fixed.json" --quiet --out "$tmp/taep-$case-fixed-$r.json"
    wait_quiet
    "$taep" run "$tmp/$case-auto.json" --quiet --out "$tmp/taep-$case-auto-$r.json"
  done
  wait_quiet
  "$python" bench/reference/pytorch_taep.py --paths $paths --steps $steps > "$tmp/torch-ring-$r.json"
  wait_quiet
  "$python" bench/reference/pytorch_taep.py --dim 64 --probes 1 --weights "$tmp/mlp_d64.safetensors" \
    --paths $paths --steps $steps > "$tmp/torch-d64-$r.json"
done

out="bench/results/cpu-mlp-$(date -u +%Y-%m-%d).json"
bench_report "$tmp" "$out" "$repeat" "$peak_json" "$loadavg_before" "$not_quiet" <<'PY'
tmp, out, repeat, peak_json, load_before, not_quiet = sys.argv[1:7]
peak = json.loads(peak_json) if peak_json != "null" else None

def best(pattern, key):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{tmp}/{pattern}"))]
    return max(runs, key=key), runs

pss = lambda r: r["performance"]["path_steps_per_second"]
cases = {}
for case, label in (("ring", "ring8, trained 3x128 SiLU MLP, d=2, exact divergence"),
                    ("d64", "8-component mixture d=64, random 3x128 SiLU MLP, 1 Rademacher probe")):
    fixed, fixed_runs = best(f"taep-{case}-fixed-*.json", pss)
    auto, _ = best(f"taep-{case}-auto-*.json", pss)
    torch_best, torch_runs = best(f"torch-{case}-*.json", lambda r: r["path_steps_per_second"])
    cfg = fixed["config"]
    weights = cfg["model"]["weights"]
    flops = network_flops(weights, cfg["model"]["divergence"], cfg["model"]["probes"])
    t_pss, a_pss, p_pss = pss(fixed), pss(auto), torch_best["path_steps_per_second"]
    # Same computation, independent random numbers: the means of S agree within their errors.
    z = (fixed["taep"]["mean"] - torch_best["mean"]) / math.hypot(fixed["taep"]["stderr_mean"],
                                                                   torch_best["mean_stderr"])
    row = {
        "workload": label,
        "paths": cfg["run"]["paths"], "steps": cfg["schedule"]["steps"],
        "network_flop_per_path_step": flops,
        "taep": {"path_steps_per_second": t_pss,
                 "path_steps_per_second_runs": [pss(r) for r in fixed_runs],
                 "default_config_path_steps_per_second": a_pss,
                 "device": fixed["performance"]["device"], "threads": fixed["performance"]["threads"],
                 "mean": fixed["taep"]["mean"], "stderr_mean": fixed["taep"]["stderr_mean"],
                 "variance": fixed["taep"]["variance"], "network_gflops": t_pss * flops / 1e9},
        "pytorch": {"path_steps_per_second": p_pss,
                    "path_steps_per_second_runs": [r["path_steps_per_second"] for r in torch_runs],
                    "threads": torch_best["threads"], "divergence": torch_best["divergence"],
                    "mean": torch_best["mean"], "stderr_mean": torch_best["mean_stderr"],
                    "variance": torch_best["variance"], "network_gflops": p_pss * flops / 1e9},
        "speedup": t_pss / p_pss,
        "speedup_default_config": a_pss / p_pss,
        "mean_difference_z": z,
    }
    if peak:
        row["taep"]["fraction_of_peak"] = row["taep"]["network_gflops"] / peak["peak_gflops"]
        row["pytorch"]["fraction_of_peak"] = row["pytorch"]["network_gflops"] / peak["peak_gflops"]
    cases[case] = row

record = {
    **measurement_provenance(peak, load_before, repeat, not_quiet),
    "notes": "taep path_steps_per_second: `taep run` with a fixed histogram range (every path "
             "simulated once, as PyTorch's timed loop); default_config: automatic range, whose "
             "pilot simulates the first 16384 paths again. Best of `repeats` runs each.",
    "results": cases,
}
json.dump(record, open(out, "w"), indent=2)
peak_s = f"{peak['peak_gflops']:.0f} GFLOP/s ({peak['vector_bits']}-bit FMA, {peak['threads']} threads)" if peak else "unknown"
print(f"device: {record['device']}; measured FP32 peak {peak_s}; load before {load_before}; "
      f"measurements started on a busy machine: {not_quiet}")
print(f"{'case':5} {'taep path-steps/s':>18} {'(default cfg)':>14} {'PyTorch':>10} {'speedup':>8} "
      f"{'(default)':>9} {'taep GFLOP/s':>13} {'% peak':>7} {'torch GFLOP/s':>14} {'mean z':>7}")
for c, r in cases.items():
    frac = f"{100 * r['taep']['fraction_of_peak']:6.1f}%" if peak else "    n/a"
    print(f"{c:5} {r['taep']['path_steps_per_second']:18.3e} {r['taep']['default_config_path_steps_per_second']:14.3e} "
          f"{r['pytorch']['path_steps_per_second']:10.3e} {r['speedup']:8.2f} {r['speedup_default_config']:9.2f} "
          f"{r['taep']['network_gflops']:13.1f} {frac} {r['pytorch']['network_gflops']:14.1f} {r['mean_difference_z']:7.2f}")
print(f"written {out}")
PY
