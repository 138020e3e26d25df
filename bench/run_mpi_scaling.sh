#!/usr/bin/env bash
# Scaling over MPI ranks on this machine (docs/distributed.md): strong scaling (a fixed run of 2^22
# paths over 1, 2, ... ranks of one thread each), weak scaling (2^21 paths per rank), one process
# with as many threads for comparison, and rank 0's merge cost against the number of accumulators
# (taep_fold_bench). Writes bench/results/cpu-mpi-<date>.json and prints a table.
#   bench/run_mpi_scaling.sh [BUILD_DIR] [MAX_RANKS]   (defaults: build, the number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build=${1:-build}
max_ranks=${2:-$(nproc)}
bench_setup run_mpi_scaling.sh "$build/taep"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
steps=100
one() {  # one NAME RANKS PATHS [THREADS]: a run's result JSON into $tmp/NAME.json
  local name=$1 ranks=$2 paths=$3 threads=${4:-1}
  wait_quiet
  if [ "$ranks" = 0 ]; then
    "$build/taep" run --paths "$paths" --steps $steps --threads "$threads" -q --out "$tmp/$name.json" 2>/dev/null
  else
    mpirun -np "$ranks" "$build/taep" run --paths "$paths" --steps $steps --threads 1 -q \
      --out "$tmp/$name.json" 2>/dev/null
  fi
}
for r in $(seq 1 "$max_ranks"); do
  one strong-$r $r $((1 << 22))
  one weak-$r $r $((r << 21))
  one threads-$r 0 $((1 << 22)) $r
done
"$build/bench/taep_fold_bench" > "$tmp/fold.jsonl"
out="bench/results/cpu-mpi-$(date -u +%Y-%m-%d).json"
bench_report "$tmp" "$out" "$max_ranks" "$steps" "$loadavg_before" "$not_quiet" <<'PY'
tmp, out, max_ranks, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
load_before, not_quiet = sys.argv[5], int(sys.argv[6])
def wall(name):
    return json.load(open(f'{tmp}/{name}.json'))['performance']['wall_seconds']
rows = []
for r in range(1, max_ranks + 1):
    rows.append({'ranks': r,
                 'strong_wall_seconds': wall(f'strong-{r}'),
                 'strong_speedup': wall('strong-1') / wall(f'strong-{r}'),
                 'weak_wall_seconds': wall(f'weak-{r}'),
                 'weak_efficiency': wall('weak-1') / wall(f'weak-{r}'),
                 'one_process_threads_wall_seconds': wall(f'threads-{r}')})
fold = [json.loads(l) for l in open(f'{tmp}/fold.jsonl')]
record = {'date': utc_now(), 'commit': git_commit(), 'device': device(),
          'load_average_before': load_before, 'load_average_after': open('/proc/loadavg').read().split()[:3],
          'waits_for_quiet_that_ran_out': not_quiet,
          'workload': f'ring8 target, exact 1-mode collapse model, d=2, {steps} Euler steps; strong: 2^22 paths; weak: 2^21 paths per rank; one thread per rank',
          'scaling': rows, 'merge': fold}
json.dump(record, open(out, 'w'), indent=2)
print(f"{'ranks':>5} {'strong s':>9} {'speedup':>8} {'weak s':>8} {'weak eff':>9} {'threads s':>10}")
for r in rows:
    print(f"{r['ranks']:5d} {r['strong_wall_seconds']:9.3f} {r['strong_speedup']:8.2f} {r['weak_wall_seconds']:8.3f} {r['weak_efficiency']:9.2f} {r['one_process_threads_wall_seconds']:10.3f}")
for f in fold:
    print(f"merge of {f['items']:>8} accumulators ({f['paths_as_segments']:.3g} paths): {f['segment_fold_seconds']*1e3:.3g} ms")
print(f"written {out}")
PY
