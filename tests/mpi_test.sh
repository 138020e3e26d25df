#!/usr/bin/env bash
# MPI ranks and checkpoints through the CLI (docs/distributed.md; ctest test `mpi`):
#  1. run (with --per-path), dft and sample under `mpirun -np 1, 2, 3` give byte-identical results
#     (timing, provenance and the echoed thread count aside) and files to the plain single process;
#  2. a run stopped by SIGTERM at a random moment (one process, and under mpirun) and resumed
#     (at another rank count) equals the uninterrupted run;
#  3. a checkpoint resumed under another config is refused naming the field, exit 2;
#  4. a rank killed mid-run makes the job exit non-zero and leaves no output file;
#  5. the mode-collapse experiment on 2 ranks gives one process's tables and samples.
# usage: mpi_test.sh TAEP_BIN [MPIRUN]. Prints its seed; TAEP_MPI_SEED replays a run.
set -euo pipefail
T=$1
MPIRUN=${2:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
seed=${TAEP_MPI_SEED:-$RANDOM}
echo "mpi_test: seed $seed (TAEP_MPI_SEED=$seed replays it)"
RANDOM=$seed
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0
check() {  # check NAME COMMAND...: runs COMMAND, counts a failure
  local name=$1
  shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
# The same result JSON apart from timing, provenance and run.threads.
same_json() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for d in (a, b):
    d.pop("performance", None)
    d.pop("provenance", None)
    d.get("config", {}).get("run", {}).pop("threads", None)
if a != b:
    for k in a:
        if a.get(k) != b.get(k):
            print("  differs:", k, file=sys.stderr)
    sys.exit(1)
EOF
}
np_run() {  # np_run R ARGS...: the CLI under mpirun with R ranks (one thread each)
  local r=$1
  shift
  "$MPIRUN" -np "$r" "$T" "$@" --threads 1
}

# 1. Any number of ranks, the same bytes. 3.1 segments of 2^20 paths; the small chunks of dft and
# sample split reduce blocks and segments across ranks within every round.
run_args=(run --paths 3300000 --steps 2 -q --set run.chunk_paths=262144)
dft_args=(dft --paths 200000 --steps 20 -q --set run.chunk_paths=16384)
sample_args=(sample --count 60000 --steps 20 -q --set run.chunk_paths=16384)
exec 3>&2 2>log  # the runs' warnings (short runs: large step errors) go to a log
"$T" "${run_args[@]}" --out run0.json --per-path run0.npz
"$T" "${dft_args[@]}" --out dft0.json
"$T" "${sample_args[@]}" --out s0.npy --result s0.json
for r in 1 2 3; do
  np_run $r "${run_args[@]}" --out run$r.json --per-path run$r.npz
  check "run, $r ranks: the same statistics" same_json run0.json run$r.json
  check "run, $r ranks: the same per-path file" cmp -s run0.npz run$r.npz
  np_run $r "${dft_args[@]}" --out dft$r.json
  check "dft, $r ranks: the same result" same_json dft0.json dft$r.json
  np_run $r "${sample_args[@]}" --out s$r.npy --result s$r.json
  check "sample, $r ranks: the same samples" cmp -s s0.npy s$r.npy
  check "sample, $r ranks: the same occupancy" same_json s0.json s$r.json
done

# 2. SIGTERM at a random moment, then resume: equal to the uninterrupted run.
stop_and_resume() {  # stop_and_resume LAUNCH_RANKS RESUME_RANKS
  local launch=$1 again=$2 pid rc=0
  rm -f ck r.json
  local delay
  delay=$(python3 -c "import random; random.seed($RANDOM); print(round(random.uniform(0.0, 0.8), 2))")
  if [ "$launch" = 0 ]; then
    "$T" "${run_args[@]}" --checkpoint ck --checkpoint-every 0.3 --out r.json 2>stop.err &
  else
    # mpirun itself (not a shell function around it), so that its children are the ranks.
    "$MPIRUN" -np "$launch" "$T" "${run_args[@]}" --threads 1 --checkpoint ck --checkpoint-every 0.3 \
      --out r.json 2>stop.err &
  fi
  pid=$!
  # A random moment once the run is under way (its first checkpoint is there).
  for _ in $(seq 100); do [ -e ck ] && break; sleep 0.1; done
  sleep "$delay"
  if [ "$launch" = 0 ]; then
    kill -TERM $pid 2>/dev/null || true
  else
    # Every rank gets the signal, as Slurm sends it to every task (Open MPI's mpirun forwards its
    # own SIGTERM only late, as part of ending the job).
    pkill -TERM -P $pid 2>/dev/null || true
  fi
  wait $pid || rc=$?
  # The run may have finished first. Its output is written atomically, so an output file is the
  # whole result (mpirun itself exits non-zero for a SIGTERM that came as the job ended).
  if [ -e r.json ]; then
    echo "     (the run ended before SIGTERM took effect, ${delay} s after its first checkpoint; rc $rc)"
    same_json run0.json r.json
    return
  fi
  [ $rc -ne 0 ] || { echo "  exit 0 without an output file" >&2; return 1; }
  grep -q "checkpoint 'ck' holds them" stop.err || { echo "  stopped without a checkpoint:" >&2; cat stop.err >&2; return 1; }
  if [ "$again" = 0 ]; then
    "$T" "${run_args[@]}" --resume ck --out r.json
  else
    np_run "$again" "${run_args[@]}" --resume ck --out r.json
  fi
  same_json run0.json r.json
}
check "SIGTERM and resume, one process" stop_and_resume 0 0
check "SIGTERM under mpirun -np 2, resume with 3 ranks" stop_and_resume 2 3

# 3. Another config: refused naming the field.
other_config() {
  local rc=0
  "$T" "${run_args[@]}" --seed 5 --resume ck --out x.json 2>refuse.err || rc=$?
  [ $rc -eq 2 ] && grep -q "run.seed" refuse.err && [ ! -e x.json ] || { cat refuse.err >&2; return 1; }
}
if [ -e ck ]; then check "another config refused naming the field" other_config; fi

# 4. A killed rank: the job fails, no output file.
killed_rank() {
  local rc=0 pid victim=""
  rm -f k.json
  np_run 2 run --paths 400000000 --steps 2 -q --out k.json 2>kill.err &
  pid=$!
  for _ in $(seq 50); do  # the ranks are the taep processes under mpirun
    victim=$(pgrep -f "$T run --paths 400000000" | grep -v "^$pid\$" | tail -1 || true)
    [ -n "$victim" ] && break
    sleep 0.1
  done
  sleep 0.5
  [ -n "$victim" ] && kill -KILL "$victim"
  wait $pid || rc=$?
  [ $rc -ne 0 ] && [ ! -e k.json ] || { echo "  rc $rc" >&2; return 1; }
}
check "a killed rank: non-zero exit, no output" killed_rank

# 5. The experiment: models train on their ranks, each model's paths spread over all of them; the
# tables (timing aside) and the samples equal one process's.
same_experiment() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
timing = {"wall_seconds", "seconds", "provenance", "train_seconds", "train_steps_per_second",
          "performance", "path_steps_per_second", "steps_per_second", "threads"}
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in timing}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
a, b = (strip(json.load(open(p + "/mode_collapse.json"))) for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
EOF
}
exp_args=(experiment mode-collapse --models uncollapsed m1_eps0.05 m2_eps0.01 --train-steps 200
          --batch 128 --paths 20000 --samples 8000 --steps 40 --no-plots -q)
"$T" "${exp_args[@]}" --threads 1 --out-dir exp0
"$MPIRUN" -np 2 "$T" "${exp_args[@]}" --threads 1 --out-dir exp2
check "experiment, 2 ranks: the same table" same_experiment exp0 exp2
check "experiment, 2 ranks: the same samples" cmp -s exp0/samples/m2_eps0.01.csv exp2/samples/m2_eps0.01.csv

exec 2>&3
[ $fails -eq 0 ] || { echo "mpi_test: the runs' stderr:"; cat log; }
echo "mpi_test: $fails failure(s)"
[ $fails -eq 0 ]
