#!/usr/bin/env bash
# CPU throughput of score models given as Python functions (docs/python.md, "Score models as
# functions"), against taep's own models on the same paths, all on one thread:
#   (a) mlp:   the ring with the trained 3x128 SiLU MLP (tests/fixtures/ring8_trained), exact
#              divergence: taep's native MLP, and the same weights as a torch module
#              (tools/taep_mlp.py) through taep.torch.ScoreModule (forward-mode autodiff);
#   (b) exact: the ring's collapse model: taep's built-in exact score, and the same mixture score
#              written in numpy as a function.
# For each callback it also times the function itself (the module's forward and JVPs, or the
# numpy code), so the record says what share of the run is taep's: the issue's bound is that the
# callback path costs the model's own time plus at most 10%.
# Needs the build's Python package (build/python) and a python3 with torch and numpy that can
# import it (Debian's python3 with python3-torch: tools/install_deps.sh --torch).
# Writes bench/results/cpu-callback-<date>.json and prints a table.
#   bench/run_cpu_callback.sh [BUILD_DIR]     (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build="${1:-build}"
bench_setup run_cpu_callback.sh "$build/taep" torch numpy
export PYTHONPATH="$build/python:tools${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c 'import taep, taep.torch, torch, numpy' ||
  { echo "run_cpu_callback.sh: $python cannot import taep (from $build/python), torch and numpy" >&2; exit 2; }
repeat=${REPEAT:-3}

wait_quiet
"$python" - "$tmp" "$repeat" <<'PY'
import json, sys, time
import numpy as np
import torch
import taep, taep.torch
import taep_mlp as tm

tmp, repeat = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
weights = "tests/fixtures/ring8_trained.safetensors"
steps, paths = 100, 16384
mlp_cfg = {"target": {"preset": "ring8"}, "model": {"type": "mlp", "weights": weights},
           "schedule": {"steps": steps}, "run": {"paths": paths, "threads": 1, "backend": "cpu"}}
exact_cfg = {"schedule": {"steps": steps}, "run": {"paths": paths, "threads": 1, "backend": "cpu"}}


class Timed(taep.torch.ScoreModule):
    """The ScoreModule, timing its evaluations (the module's forward and JVPs)."""
    seconds = 0.0

    def taep_evaluate(self, x, t, probe_vectors):
        t0 = time.perf_counter()
        out = super().taep_evaluate(x, t, probe_vectors)
        Timed.seconds += time.perf_counter() - t0
        return out


# The ring collapse model's mixture in numpy: 8 components at 4(cos, sin) with sigma 0.25, one
# weight 0.01 (taep's default model), diffused by the VP schedule.
cfg = taep.run(exact_cfg, run__paths=1)["config"]
K, r, sigma = 8, 4.0, 0.25
ang = 2 * np.pi * np.arange(K) / K
means = np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
w = np.full(K, 1.0)
w[0] = 0.01
log_w = np.log(w / w.sum())
bmin, bmax = cfg["schedule"]["beta_min"], cfg["schedule"]["beta_max"]
numpy_seconds = [0.0]


def abar(t):
    return np.exp(-(bmin * t + 0.5 * (bmax - bmin) * t * t))


def mixture(x, t):
    t0 = time.perf_counter()
    a = abar(t)
    v = a * sigma ** 2 + 1 - a
    u = np.sqrt(a) * means[None, :, :] - x[:, None, :].astype(np.float64)   # (n, K, d)
    logit = log_w[None, :] - 0.5 * (u ** 2).sum(-1) / v
    p = np.exp(logit - logit.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    s = (p[:, :, None] * u).sum(1) / v
    div = -2 / v + ((p * (u ** 2).sum(-1)).sum(1) / v ** 2 - (s ** 2).sum(1))
    numpy_seconds[0] += time.perf_counter() - t0
    return s, div


def best(fn):
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), runs


rows = {}
native, native_runs = best(lambda: taep.run(mlp_cfg))
net = tm.load_safetensors(weights)
module = Timed(net)
Timed.seconds = 0.0
torch_wall, torch_runs = best(lambda: taep.run(mlp_cfg, score=module))
module_share = Timed.seconds / sum(torch_runs)
rows["mlp"] = {
    "workload": f"ring8, trained 3x128 SiLU MLP, d=2, exact divergence, {paths} paths x {steps} steps, 1 thread",
    "native_path_steps_per_second": paths * steps / native,
    "score_module_path_steps_per_second": paths * steps / torch_wall,
    "score_module_seconds_in_module_share": module_share,
    "taep_overhead_on_module_time": 1 / module_share - 1,
    "torch": torch.__version__,
}
builtin, builtin_runs = best(lambda: taep.run(exact_cfg))
numpy_seconds[0] = 0.0
numpy_wall, numpy_runs = best(lambda: taep.run(exact_cfg, score=lambda x, t: mixture(x, t)[0],
                                               divergence=lambda x, t: mixture(x, t)[1]))
rows["exact"] = {
    "workload": f"ring8 collapse model (m=1, eps=0.01), exact score, {paths} paths x {steps} steps, 1 thread",
    "builtin_path_steps_per_second": paths * steps / builtin,
    "numpy_callback_path_steps_per_second": paths * steps / numpy_wall,
    "numpy_seconds_share": numpy_seconds[0] / sum(numpy_runs),
    "note": "the numpy function is called twice per batch and step (score, then divergence), "
            "each computing both",
}
json.dump(rows, open(f"{tmp}/rows.json", "w"))
PY

out="bench/results/cpu-callback-$(date -u +%Y-%m-%d).json"
bench_report "$tmp" "$out" "$repeat" "$loadavg_before" "$not_quiet" <<'PY'
tmp, out, repeat, load_before, not_quiet = sys.argv[1:6]
rows = json.load(open(f"{tmp}/rows.json"))
record = {**measurement_provenance(None, load_before, repeat, not_quiet), "results": rows}
json.dump(record, open(out, "w"), indent=2)
m, e = rows["mlp"], rows["exact"]
print(f"mlp:   native {m['native_path_steps_per_second']:.3g}, ScoreModule "
      f"{m['score_module_path_steps_per_second']:.3g} path-steps/s; module "
      f"{100 * m['score_module_seconds_in_module_share']:.1f}% of the time, taep adds "
      f"{100 * m['taep_overhead_on_module_time']:.1f}%")
print(f"exact: built-in {e['builtin_path_steps_per_second']:.3g}, numpy callback "
      f"{e['numpy_callback_path_steps_per_second']:.3g} path-steps/s")
print(f"written {out}")
PY
