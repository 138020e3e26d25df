#!/usr/bin/env bash
# CPU throughput of the real-data workloads of docs/real-data.md on scikit-learn's digits
# (tools/export_digits.py; all N = 1797 rows of d = 64 as the target):
#   (a) empirical: the empirical score of the N rows (a mixture of N zero-width components)
#       against the 1-mode collapse of itself (an exact model: one shared pass over the rows per
#       path-step, physics::accumulate_mixture);
#   (b) mlp_vs_empirical: a digits score network (2 x 256 SiLU, trained here for 2000 steps) with
#       Hutchinson divergence (2 Rademacher probes) against the empirical score;
#   (c) mlp_vs_mlp: the same network against a reference network (its own 1000-step snapshot):
#       two networks with the same probes per path-step, no mixture.
# FLOP per path-step: (a) 12 d + 8 per row (the streaming softmax of accumulate_mixture: u, |u|^2,
# the rescale of both score sums and the two adds are d FMAs each, 2 FLOP per FMA), times N;
# (b) that per row with one sum (8 d + 8) plus the network (forward and P tangents, as
# bench/run_cpu_mlp.sh counts it); (c) twice the network. Against the peak FP32 FMA rate measured
# here. Writes bench/results/cpu-realdata-<date>.json and prints it.
#   bench/run_cpu_realdata.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
taep="${1:-build}/taep"
bench_setup run_cpu_realdata.sh "$taep" sklearn numpy torch
"$python" -c 'import sklearn, numpy' || { echo "run_cpu_realdata.sh: needs python3 with scikit-learn and numpy" >&2; exit 2; }
repeat=${REPEAT:-3}

measure_peak_fp32
"$python" tools/export_digits.py --out "$tmp" >/dev/null
data="$tmp/digits_all.npy"
"$python" - "$tmp" <<'PY'
import numpy as np, sys
t = sys.argv[1]
np.save(f"{t}/digits_all.npy", np.concatenate([np.load(f"{t}/digits_train.npy"), np.load(f"{t}/digits_holdout.npy")]))
PY

cat > "$tmp/train.json" <<EOF
{"data": {"samples": "$data"}, "network": {"hidden": [256, 256]},
 "optimizer": {"steps": 2000, "batch": 256}, "run": {"log_every": 500}}
EOF
"$taep" train "$tmp/train.json" -q --out "$tmp/net.safetensors" --snapshot-every 1000 \
  --snapshot-dir "$tmp/snaps"

steps=200
cat > "$tmp/empirical.json" <<EOF
{"target": {"samples": "$data"}, "model": {"collapse": {"modes": 1, "eps": 0.5}},
 "schedule": {"steps": $steps}, "run": {"paths": 4096}, "histogram": {"range": [-1e4, 1e4]}}
EOF
cat > "$tmp/mlp_vs_empirical.json" <<EOF
{"target": {"samples": "$data"}, "model": {"type": "mlp", "weights": "$tmp/net.safetensors",
 "divergence": "hutchinson", "probes": 2}, "schedule": {"steps": $steps}, "run": {"paths": 4096},
 "histogram": {"range": [-1e6, 1e6]}}
EOF
cat > "$tmp/mlp_vs_mlp.json" <<EOF
{"target": {"samples": "$data"}, "reference": {"type": "mlp", "weights": "$tmp/snaps/step_00001000.safetensors"},
 "model": {"type": "mlp", "weights": "$tmp/net.safetensors", "divergence": "hutchinson", "probes": 2},
 "schedule": {"steps": $steps}, "run": {"paths": 16384}, "histogram": {"range": [-1e6, 1e6]}}
EOF
for r in $(seq "$repeat"); do
  for case in empirical mlp_vs_empirical mlp_vs_mlp; do
    wait_quiet
    "$taep" run "$tmp/$case.json" --quiet --out "$tmp/$case-$r.json"
  done
done

out="bench/results/cpu-realdata-$(date -u +%Y-%m-%d).json"
bench_report "$tmp" "$out" "$repeat" "$peak_json" "$loadavg_before" "$not_quiet" <<'PY'
tmp, out, repeat, peak_json, load_before, not_quiet = sys.argv[1:7]
peak = json.loads(peak_json) if peak_json != "null" else None
pss = lambda r: r["performance"]["path_steps_per_second"]

first = json.load(open(f"{tmp}/empirical-1.json"))
import numpy as np
rows = np.load(first["config"]["target"]["samples"], mmap_mode="r")
N, d = rows.shape
net = network_flops(f"{tmp}/net.safetensors", "hutchinson", 2)
flops = {"empirical": (12 * d + 8) * N, "mlp_vs_empirical": (8 * d + 8) * N + net, "mlp_vs_mlp": 2 * net}
labels = {"empirical": f"empirical score of N = {N} digits rows (d = {d}) against its 1-mode collapse",
          "mlp_vs_empirical": "2x256 SiLU digits network, 2 Rademacher probes, against the empirical score",
          "mlp_vs_mlp": "the same network against a reference network (its 1000-step snapshot), same probes"}
cases = {}
for case in flops:
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{tmp}/{case}-*.json"))]
    best = max(runs, key=pss)
    row = {"workload": labels[case], "paths": best["config"]["run"]["paths"],
           "steps": best["config"]["schedule"]["steps"], "flop_per_path_step": flops[case],
           "path_steps_per_second": pss(best), "path_steps_per_second_runs": [pss(r) for r in runs],
           "gflops": pss(best) * flops[case] / 1e9, "device": best["performance"]["device"],
           "threads": best["performance"]["threads"], "mean_S": best["taep"]["mean"],
           "stderr_mean": best["taep"]["stderr_mean"]}
    if peak:
        row["fraction_of_peak"] = row["gflops"] / peak["peak_gflops"]
    cases[case] = row
record = {**measurement_provenance(peak, load_before, repeat, not_quiet),
          "notes": "Best of `repeats` runs of `taep run` with a fixed histogram range. The streaming "
                   "softmax rescales both score sums at every row (2 d of the 12 d FLOP per row); "
                   "the CUDA kernel's two-pass log2 form does not (docs/gpu-kernels.md).",
          "results": cases}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(record, open(out, "w"), indent=2)
print(json.dumps(record, indent=2))
PY
