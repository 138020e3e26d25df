# Shared parts of the CPU benchmark scripts (bench/run_cpu.sh, run_cpu_mlp.sh, run_cpu_train.sh).
# Each script cds to the repository root, then sources this file (it sets no options of its own).
#
#   bench_setup NAME EXECUTABLE [MODULE...]
#       fails with status 2 unless EXECUTABLE (a file of the build tree) is there; sets `python` to
#       /usr/bin/python3 when it imports the MODULEs (Debian's packages), else python3 on PATH; makes
#       the scratch directory `tmp` (removed on exit) and records `loadavg_before`.
#   wait_quiet
#       waits until the CPUs were less than 5% busy over 2 s, at most `quiet_wait` seconds
#       (QUIET_WAIT, default 120); counts the waits that ran out in `not_quiet`. Other processes on a
#       small machine slow a measurement down, and one that starts on a busy machine is recorded.
#   measure_peak_fp32
#       sets `bits` (512 where the CPU has AVX-512, else 256) and `peak_json`: the peak FP32 FMA rate
#       of independent FMA chains in registers on every core, as {"peak_gflops", "vector_bits",
#       "threads"}, or null when no C++ compiler ($CXX, else c++) builds the probe.
#   bench_report ARG... <<'PY' ... PY
#       runs the Python program on standard input with ARGs (sys.argv[1:]) after a prelude that
#       imports datetime, glob, json, math, os, platform, subprocess, sys and defines the provenance
#       every result file records: utc_now(), git_commit() ("<short hash>[+dirty]") and
#       device() ("<CPU model>, <n> logical cores"), and measurement_provenance(peak,
#       load_before, repeat, not_quiet), those and the conditions of a measurement (peak FP32 rate,
#       load average before and after, repeats, waits for a quiet machine that ran out), the first
#       fields of a record in this order; and network_flops(weights, divergence, probes), the
#       FLOP per path-step of an MLP weight file (run_cpu_mlp.sh, run_cpu_realdata.sh).

quiet_wait=${QUIET_WAIT:-120}
not_quiet=0

bench_setup() {
  local name=$1 exe=$2
  shift 2
  [ -x "$exe" ] || { echo "$name: $exe not found; build first" >&2; exit 2; }
  python=/usr/bin/python3
  local IFS=,
  "$python" -c "import sys${*:+,$*}" 2>/dev/null || python=python3
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
}

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

measure_peak_fp32() {
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
}

bench_report() {
  "$python" - "$@" <<PY
import datetime, glob, json, math, os, platform, subprocess, sys

def utc_now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")

def git_commit():
    run = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    dirty = run("status", "--porcelain", "--untracked-files=no")
    return run("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

def device():
    return f"{cpu_model()}, {os.cpu_count()} logical cores"

def network_flops(weights, divergence, probes):
    """2 x the multiply-adds per path-step of a taep MLP weight file: the forward pass (layer 0's x
    columns only) plus the tangents (exact: d x the hidden GEMMs and the output diagonal;
    hutchinson: probes x every layer)."""
    sys.path.insert(0, "tools")
    import taep_mlp as tm
    _, t = tm.read_safetensors(weights)
    shapes = [t[f"layers.{i}.weight"][1].shape for i in range(len([k for k in t if k.endswith(".weight")]))]
    d = shapes[-1][0]
    x_in = d * shapes[0][0]
    hidden = sum(o * i for o, i in shapes[1:-1])
    out = shapes[-1][0] * shapes[-1][1]
    forward = x_in + hidden + out
    tangents = d * (hidden + shapes[-1][1]) if divergence == "exact" else probes * forward
    return 2 * (forward + tangents)

def measurement_provenance(peak, load_before, repeat, not_quiet):
    return {"date": utc_now(), "commit": git_commit(), "device": device(), "peak_fp32": peak,
            "loadavg_before": load_before,
            "loadavg_after": " ".join(open("/proc/loadavg").read().split()[:3]),
            "repeats": int(repeat), "measurements_started_on_a_busy_machine": int(not_quiet)}

$(cat)
PY
}
