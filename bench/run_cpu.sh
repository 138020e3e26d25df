#!/usr/bin/env bash
# CPU throughput: taep's CPU backend against the vectorized numpy implementation of the same
# integrator, measured in the same run on the 2D ring with the exact (1-mode collapse) model.
# Writes bench/results/cpu-<date>.json and prints a short table.
#   bench/run_cpu.sh [BUILD_DIR]        (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench="${1:-build}/bench/taep_bench"
bench_setup run_cpu.sh "$bench" numpy

steps=1000
for scheme in euler milstein; do
  "$bench" --backend cpu --steps $steps --paths 262144 --scheme $scheme --repeat 3 > "$tmp/taep-$scheme.json"
  "$python" bench/reference/numpy_taep.py --paths 100000 --steps $steps --scheme $scheme \
    --dtype float32 > "$tmp/numpy-$scheme.json"
done

out="bench/results/cpu-$(date -u +%Y-%m-%d).json"
bench_report "$tmp" "$out" <<'PY'
tmp, out = sys.argv[1], sys.argv[2]
rows = {}
for scheme in ('euler', 'milstein'):
    t = json.load(open(f'{tmp}/taep-{scheme}.json'))
    n = json.load(open(f'{tmp}/numpy-{scheme}.json'))
    rows[scheme] = {'taep': t, 'numpy': n,
                    'speedup': t['best_path_steps_per_second'] / n['path_steps_per_second']}
record = {'date': utc_now(),
          'commit': git_commit(),
          'device': device(),
          'workload': 'ring8 target, exact 1-mode collapse model (eps 0.01), d=2, 1000 steps',
          'results': rows}
json.dump(record, open(out, 'w'), indent=2)
print(f"{'scheme':10} {'taep path-steps/s':>18} {'numpy path-steps/s':>19} {'speedup':>8}")
for s, r in rows.items():
    print(f"{s:10} {r['taep']['best_path_steps_per_second']:18.3e} {r['numpy']['path_steps_per_second']:19.3e} {r['speedup']:8.1f}")
print(f"written {out}")
PY
