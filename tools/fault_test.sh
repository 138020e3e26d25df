#!/usr/bin/env bash
# Fault tests of taep's output files (README.md, "Fuzzing and fault tests"):
#   tools/fault_test.sh [TAEP_BINARY]        (default build/taep; ctest test fault_test, label fault)
# 1. signals at random moments during run, sample and train writing over files with known content;
# 2. odd output targets: a character device, a FIFO, a symlink, a directory, a missing or
#    unwritable directory, the same file for --out and --result, a 250-character name;
# 3. concurrent writers of one --out.
# Each check prints one line, PASS, FAIL or SKIP, saying what it did; the script exits 1 if any
# check failed. The random delays come from TAEP_FAULT_SEED (printed; set it to replay a run);
# TAEP_FAULT_ROUNDS (default 2) is how many times each command meets each signal.
set -uo pipefail

taep="${1:-build/taep}"
[ -x "$taep" ] || { echo "fault_test: no taep binary at '$taep'" >&2; exit 2; }
taep="$(cd "$(dirname "$taep")" && pwd)/$(basename "$taep")"
command -v python3 >/dev/null || { echo "fault_test: python3 is needed" >&2; exit 2; }
seed="${TAEP_FAULT_SEED:-$(( $(date +%s) % 100000 ))}"
RANDOM=$seed
echo "fault_test: seed $seed (replay with TAEP_FAULT_SEED=$seed $0 $taep)"

# One thread per process: the checks run several at once on small machines.
export OMP_NUM_THREADS=1
root="$(mktemp -d "${TMPDIR:-/tmp}/taep-fault.XXXXXX")"
trap 'chmod -R u+w "$root" 2>/dev/null; rm -rf "$root"' EXIT
passed=0 failed=0 skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; skipped=$((skipped + 1)); }
is_root() { [ "$(id -u)" -eq 0 ]; }
fresh_dir() { local d; d="$(mktemp -d "$root/$1.XXXXXX")"; echo "$d"; }
# Entries of a directory (dot files too), one per line, sorted.
entries() { (cd "$1" && LC_ALL=C ls -A | LC_ALL=C sort); }
# The entries of $1 beyond the names given, space-separated ("" when there are none).
extra_entries() {
  local d="$1" e n out=()
  shift
  while IFS= read -r e; do
    for n in "$@"; do [ "$e" = "$n" ] && continue 2; done
    out+=("$e")
  done < <(entries "$d")
  echo "${out[*]}"
}
first_line() { head -n 1 "$1" 2>/dev/null | cut -c1-160; }

# ---- what a complete output is -------------------------------------------------------------------
valid_json() { python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }
# A samples CSV of `taep sample`: the header x0,...,x{d-1}, then exactly $2 rows of d numbers.
valid_csv() {
  python3 - "$1" "$2" <<'EOF' 2>/dev/null
import sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "no final newline"
header, rows = lines[0].split(","), lines[1:-1]
assert header == ["x%d" % i for i in range(len(header))]
assert len(rows) == int(sys.argv[2])
for r in rows:
    assert len([float(v) for v in r.split(",")]) == len(header)
EOF
}
# A safetensors file: length, JSON header, and data exactly as long as its tensors' offsets say.
valid_safetensors() {
  python3 - "$1" <<'EOF' 2>/dev/null
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
end = max(v["data_offsets"][1] for k, v in h.items() if k != "__metadata__")
assert len(b) == 8 + n + end
EOF
}

old_content="old content that taep must either keep or replace whole"

# ---- the commands under test ---------------------------------------------------------------------
# Each writes into directory $1 and takes extra arguments after it; the outputs are named below.
cfg_dir="$root/inputs"
mkdir -p "$cfg_dir"
cat >"$cfg_dir/train.json" <<'EOF'
{"network": {"hidden": [16, 16]}, "optimizer": {"steps": 800, "batch": 256},
 "run": {"backend": "cpu", "threads": 1, "log_every": 100}}
EOF
run_paths=150000 sample_count=60000
outputs_run=(out.json)
outputs_sample=(samples.csv result.json)
outputs_train=(model.safetensors result.json)
start_cmd() {  # start_cmd KIND DIR: starts it in the background, its pid in $cmd_pid
  local kind="$1" d="$2" args
  case "$kind" in
    run) args=(run --paths "$run_paths" --steps 200 --backend cpu --quiet --out "$d/out.json") ;;
    sample) args=(sample --count "$sample_count" --steps 400 --backend cpu --quiet
                  --out "$d/samples.csv" --result "$d/result.json") ;;
    train) args=(train "$cfg_dir/train.json" --quiet --out "$d/model.safetensors"
                 --result "$d/result.json") ;;
  esac
  # A simple command, so that $! is taep itself (env execs it). env resets the signals to their
  # defaults: a background job of a script ignores SIGINT, and a CI runner may ignore SIGHUP;
  # taep must be tested as a terminal would start it.
  env --default-signal=INT,TERM,HUP "$taep" "${args[@]}" 2>"$root/$kind.stderr" &
  cmd_pid=$!
}
# complete KIND FILE: FILE is a complete new output of KIND.
complete() {
  case "$1:$(basename "$2")" in
    *.json) valid_json "$2" ;;
    sample:samples.csv) valid_csv "$2" "$sample_count" ;;
    train:model.safetensors) valid_safetensors "$2" ;;
    *) return 1 ;;
  esac
}
is_old() { [ "$(cat "$1" 2>/dev/null)" = "$old_content" ]; }
# complete_outputs KIND DIR: every output of KIND in DIR is a complete new one.
complete_outputs() {
  local -n outs="outputs_$1"
  local f
  for f in "${outs[@]}"; do complete "$1" "$2/$f" || return 1; done
}
# old_or_complete KIND DIR: each output holds the old content or a complete new one; prints
# what each holds.
old_or_complete() {
  local -n outs="outputs_$1"
  local f ok=0 said=()
  for f in "${outs[@]}"; do
    if is_old "$2/$f"; then said+=("$f old")
    elif complete "$1" "$2/$f"; then said+=("$f new")
    else said+=("$f BROKEN"); ok=1
    fi
  done
  echo "$(IFS=,; echo "${said[*]}")"
  return $ok
}
seed_outputs() {
  local -n outs="outputs_$1"
  local f
  for f in "${outs[@]}"; do printf '%s' "$old_content" >"$2/$f"; done
}

# ---- 1. signals at random moments ----------------------------------------------------------------
echo "fault_test: 1. signals at random moments"
declare -A duration_ms
for kind in run sample train; do
  d="$(fresh_dir "$kind-ref")"
  seed_outputs "$kind" "$d"
  t0=$(date +%s%N)
  start_cmd "$kind" "$d"
  wait "$cmd_pid"
  rc=$?
  duration_ms[$kind]=$(( ($(date +%s%N) - t0) / 1000000 ))
  local_outs="outputs_$kind[@]"
  extra="$(extra_entries "$d" "${!local_outs}")"
  if [ $rc -eq 0 ] && complete_outputs "$kind" "$d" && [ -z "$extra" ]; then
    pass "$kind uninterrupted over old files: exit 0, complete outputs, nothing else left (${duration_ms[$kind]} ms)"
  else
    fail "$kind uninterrupted over old files: exit $rc, outputs complete: $(complete_outputs "$kind" "$d" && echo yes || echo no), left: '${extra}'; $(first_line "$root/$kind.stderr")"
  fi
done

signum() { case "$1" in INT) echo 2 ;; HUP) echo 1 ;; KILL) echo 9 ;; TERM) echo 15 ;; esac; }
rounds="${TAEP_FAULT_ROUNDS:-2}"  # each round: every command with every signal, at new moments
for round in $(seq "$rounds"); do
for kind in run sample train; do
  for sig in INT TERM HUP KILL; do
    d="$(fresh_dir "$kind-$sig")"
    seed_outputs "$kind" "$d"
    # Uniform over the command's whole life and a little past it (a signal after the end is a
    # run that completed: then its outputs must be complete).
    span=$(( duration_ms[$kind] * 12 / 10 + 1 ))
    delay=$(( (RANDOM * 32768 + RANDOM) % span ))
    start_cmd "$kind" "$d"
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -s "$sig" "$cmd_pid" 2>/dev/null && sent=yes || sent=no
    wait "$cmd_pid" 2>/dev/null  # (bash would report the killed job on stderr)
    rc=$?
    what="$kind, SIG$sig after $delay ms"
    local_outs="outputs_$kind[@]"
    problems=()
    if [ $rc -eq $((128 + $(signum "$sig"))) ]; then
      state="$(old_or_complete "$kind" "$d")" ||
        problems+=("an output is neither the old content nor complete")
    elif [ $rc -eq 0 ]; then
      state="finished before the signal (sent: $sent)"
      complete_outputs "$kind" "$d" || problems+=("exit 0 without complete outputs")
    else
      state="exit $rc"
      problems+=("exit $rc, not $((128 + $(signum "$sig"))) (the signal's) or 0; $(first_line "$root/$kind.stderr")")
    fi
    if [ "$sig" != KILL ]; then
      extra="$(extra_entries "$d" "${!local_outs}")"
      [ -z "$extra" ] || problems+=("left behind: $extra")
    else
      # A killed process cleans nothing; the next taep writing into the directory must.
      "$taep" run --paths 4096 --steps 10 --backend cpu --quiet --out "$d/next.json" 2>/dev/null
      extra="$(extra_entries "$d" "${!local_outs}" next.json)"
      [ -z "$extra" ] || problems+=("after the next taep run into the directory, still left: $extra")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
      pass "$what: exit $rc, $state, no temp file left$([ "$sig" = KILL ] && echo " after the next run")"
    else
      fail "$what: $state; $(IFS=';'; echo "${problems[*]}")"
    fi
  done
done
done

# ---- 2. odd output targets -----------------------------------------------------------------------
echo "fault_test: 2. odd output targets"
quick=(run --paths 4096 --steps 10 --backend cpu --quiet)

# A character device. Tried first on a node of our own (the null device, made with mknod in a
# scratch directory): a writer that replaces the target would otherwise replace the system's
# /dev/null. /dev/null itself is written only once that passed.
if ! is_root; then
  skip "--out onto a character device: needs root (mknod, and /dev/null is only at risk as root)"
else
  d="$(fresh_dir chardev)"
  if mknod "$d/null" c 1 3 2>/dev/null && (echo probe >"$d/null") 2>/dev/null; then
    "$taep" "${quick[@]}" --out "$d/null" 2>"$root/err"
    rc=$?
    if [ $rc -eq 0 ] && [ -c "$d/null" ] && [ -z "$(extra_entries "$d" null)" ]; then
      pass "--out onto a character device node (mknod c 1 3): exit 0, still a character device, nothing left"
      "$taep" "${quick[@]}" --out /dev/null 2>"$root/err"
      rc=$?
      if [ $rc -eq 0 ] && [ -c /dev/null ]; then
        pass "--out /dev/null: exit 0, /dev/null still a character device"
      else
        fail "--out /dev/null: exit $rc, character device: $([ -c /dev/null ] && echo yes || echo NO); $(first_line "$root/err")"
      fi
    else
      fail "--out onto a character device node (mknod c 1 3): exit $rc, still a character device: $([ -c "$d/null" ] && echo yes || echo no), left: '$(extra_entries "$d" null)'; $(first_line "$root/err")"
      skip "--out /dev/null: not tried, a device node was not written through"
    fi
  else
    skip "--out onto a character device: cannot make a usable device node here (nodev mount?)"
  fi
fi

# A FIFO with a reader gets the whole output; the FIFO stays one.
d="$(fresh_dir fifo)"
mkfifo "$d/fifo"
timeout 30 cat "$d/fifo" >"$root/fifo.got" &
reader=$!
timeout 30 "$taep" "${quick[@]}" --out "$d/fifo" 2>"$root/err"
rc=$?
if [ -p "$d/fifo" ]; then
  wait "$reader"
else  # the FIFO was replaced: its reader waits for a writer that never comes
  kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null
fi
if [ $rc -eq 0 ] && [ -p "$d/fifo" ] && valid_json "$root/fifo.got" && [ -z "$(extra_entries "$d" fifo)" ]; then
  pass "--out onto a FIFO with a reader: exit 0, the reader got a complete result, still a FIFO"
else
  fail "--out onto a FIFO with a reader: exit $rc, still a FIFO: $([ -p "$d/fifo" ] && echo yes || echo no), reader got a complete result: $(valid_json "$root/fifo.got" && echo yes || echo no), left: '$(extra_entries "$d" fifo)'; $(first_line "$root/err")"
fi

# A symlink: its target is replaced, the link stays a link.
d="$(fresh_dir symlink)"
printf '%s' "$old_content" >"$d/real.json"
ln -s real.json "$d/link.json"
"$taep" "${quick[@]}" --out "$d/link.json" 2>"$root/err"
rc=$?
if [ $rc -eq 0 ] && [ -L "$d/link.json" ] && [ "$(readlink "$d/link.json")" = real.json ] &&
   valid_json "$d/real.json" && [ -z "$(extra_entries "$d" real.json link.json)" ]; then
  pass "--out onto a symlink: exit 0, the link's target holds the result, the link is still a link"
else
  fail "--out onto a symlink: exit $rc, still a link: $([ -L "$d/link.json" ] && echo yes || echo no), target complete: $(valid_json "$d/real.json" && echo yes || echo no), left: '$(extra_entries "$d" real.json link.json)'; $(first_line "$root/err")"
fi

# Targets that cannot be written: exit 2, one error line naming --out, nothing left behind.
refused() {  # refused WHAT DIR OUT_PATH EXPECTED_ENTRIES...
  local what="$1" d="$2" out="$3"; shift 3
  "$taep" "${quick[@]}" --out "$out" 2>"$root/err"
  local rc=$? extra
  extra="$(extra_entries "$d" "$@")"
  if [ $rc -eq 2 ] && grep -q -- '--out' "$root/err" && [ -z "$extra" ]; then
    pass "--out onto $what: exit 2, the error names --out, nothing left ($(first_line "$root/err"))"
  else
    fail "--out onto $what: exit $rc, left: '$extra'; $(first_line "$root/err")"
  fi
}
d="$(fresh_dir dir)"
mkdir "$d/sub"
refused "a directory" "$d" "$d/sub" sub
[ -z "$(entries "$d/sub")" ] || fail "--out onto a directory: it now holds $(entries "$d/sub" | tr '\n' ' ')"
d="$(fresh_dir missing)"
refused "a file in a missing directory" "$d" "$d/missing/out.json"
if is_root; then
  skip "--out into an unwritable directory: root writes anywhere"
else
  d="$(fresh_dir readonly)"
  mkdir "$d/ro"
  chmod 555 "$d/ro"
  refused "a file in an unwritable directory" "$d/ro" "$d/ro/out.json"
  chmod 755 "$d/ro"
fi

# The same file for --out and --result: refused before anything is written, naming both flags.
same_path() {  # same_path WHAT DIR RESULT_PATH
  local what="$1" d="$2" result="$3"
  "$taep" sample --count 4096 --steps 10 --backend cpu --quiet --out "$d/F" --result "$result" 2>"$root/err"
  local rc=$?
  if [ $rc -eq 2 ] && grep -q -- '--out' "$root/err" && grep -q -- '--result' "$root/err" &&
     [ "$(cat "$d/F")" = "$old_content" ] && [ -z "$(extra_entries "$d" F L)" ]; then
    pass "sample --out F --result $what: exit 2, the error names both flags, F unchanged"
  else
    fail "sample --out F --result $what: exit $rc, F unchanged: $([ "$(cat "$d/F")" = "$old_content" ] && echo yes || echo no), left: '$(extra_entries "$d" F L)'; $(first_line "$root/err")"
  fi
}
d="$(fresh_dir samepath)"
printf '%s' "$old_content" >"$d/F"
same_path "F (the same path)" "$d" "$d/F"
ln -s F "$d/L"
same_path "L (a symlink to F)" "$d" "$d/L"

# A 250-character file name (the longest most file systems allow is 255).
d="$(fresh_dir longname)"
long="$(printf 'n%.0s' $(seq 245)).json"
"$taep" "${quick[@]}" --out "$d/$long" 2>"$root/err"
rc=$?
if [ $rc -eq 0 ] && valid_json "$d/$long" && [ -z "$(extra_entries "$d" "$long")" ]; then
  pass "--out with a ${#long}-character file name: exit 0, complete result, nothing else left"
else
  fail "--out with a ${#long}-character file name: exit $rc, left: '$(extra_entries "$d" "$long")'; $(first_line "$root/err")"
fi

# ---- 3. concurrent writers -----------------------------------------------------------------------
echo "fault_test: 3. concurrent writers"
d="$(fresh_dir concurrent)"
printf '%s' "$old_content" >"$d/out.json"
pids=()
for i in 1 2 3 4; do
  "$taep" run --paths 20000 --steps 100 --seed "$i" --backend cpu --quiet --out "$d/out.json" \
    2>"$root/concurrent.$i" &
  pids+=($!)
done
codes=()
for p in "${pids[@]}"; do wait "$p"; codes+=($?); done
seed_of=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["config"]["run"]["seed"])' \
            "$d/out.json" 2>/dev/null)
if [ "${codes[*]}" = "0 0 0 0" ] && valid_json "$d/out.json" && [ -n "$seed_of" ] &&
   [ -z "$(extra_entries "$d" out.json)" ]; then
  pass "4 concurrent taep run --out onto one file: all exit 0, the file is one complete result (seed $seed_of's), nothing else left"
else
  fail "4 concurrent taep run --out onto one file: exits ${codes[*]}, complete: $(valid_json "$d/out.json" && echo yes || echo no), left: '$(extra_entries "$d" out.json)'; $(first_line "$root/concurrent.1")"
fi

echo "fault_test: $passed passed, $failed failed, $skipped skipped (seed $seed)"
[ $failed -eq 0 ]
