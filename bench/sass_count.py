#!/usr/bin/env python3
"""Counts the sm_90 machine code (SASS) of taep's CUDA kernels, with no GPU.

Reads the kernel objects of a build tree (BUILD_DIR, default build/) with cuobjdump, splits each
kernel into its loops (a backward branch closes a loop over the addresses it jumps back across) and
counts the instructions of each loop body by class. The path-step loop of a kernel is the top-level
loop with the most exponentials. One iteration of it may carry several path-steps (the forward
kernel takes the noise of 4/gcd(d, 4) steps as whole Philox blocks, docs/gpu-kernels.md): each
path-step adds its float increment to the double S exactly once, so the DADDs of the loop body give
the steps per iteration, and the count is divided by them. Loops nested in the step loop (passes
over mixture components whose count is not compiled in) are weighted by their trip count for K
components (--components, default the ring's 8; see count_loop). Both arms of a branch inside the
loop are counted, so a count is an upper bound of what one path-step issues.

Cases (what --json writes under "cases", one per kernel with a step loop): the forward kernel per
compiled d, component count (0: any) and sharing mode, and the reverse kernels. "ring" names the
paper's ring (d = 2, K = 8) under "shared" (model and target share their components: one pass per
step, every collapse model) and "non_shared" (two passes), with the budgets of "budget";
--check fails (exit 1) when a ring case is over its budget or a forward kernel's step loop touches
local memory.

Output: per case `instructions_per_path_step`, `by_class` (FFMA, FMUL, FADD, MUFU, global/local/
shared/constant loads and stores, branches, integer, conversions, other), `local_memory_in_loop`,
`steps_per_iteration`, and per kernel the registers, spill stores/loads and local memory bytes from
cuobjdump -res-usage. It needs cuobjdump: the CUDA toolkit's, or the PyPI wheel
nvidia-cuda-cuobjdump (the script finds either). Usage:
BUILD_DIR=build python3 bench/sass_count.py [--json FILE] [--components K] [--arch sm_90] [--check]
"""
import argparse
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys

OBJECTS = ["forward_taep_kernel", "reverse_kernel", "reduce_kernel", "mlp_kernels"]


def find_tool(name):
    """A CUDA binary tool: on PATH, in /usr/local/cuda/bin, or from its PyPI wheel."""
    found = shutil.which(name)
    if found:
        return found
    for root in ["/usr/local/cuda/bin"] + sys.path:
        for cand in glob.glob(os.path.join(root, name)) + glob.glob(
                os.path.join(root, "nvidia", "cu*", "bin", name)):
            if os.access(cand, os.X_OK):
                return cand
    return None


def find_cuobjdump():
    return find_tool("cuobjdump")


def tool_env():
    """cuobjdump -sass runs nvdisasm, which the cuobjdump wheel does not bring (the
    nvidia-cuda-nvdisasm wheel does): point cuobjdump at it wherever it is."""
    env = dict(os.environ)
    nvdisasm = find_tool("nvdisasm")
    if nvdisasm and "NVDISASM_PATH" not in env:
        env["NVDISASM_PATH"] = os.path.dirname(nvdisasm)
        env["PATH"] = os.path.dirname(nvdisasm) + os.pathsep + env.get("PATH", "")
    return env


LINE = re.compile(r"^\s+/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z0-9_.]+)(.*?);")
FUNC = re.compile(r"^\s+Function : (\S+)")


def parse_sass(text):
    """{mangled name: [(address, opcode, operands)]}"""
    funcs, cur = {}, None
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = LINE.match(line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(3), m.group(4).strip()))
    return funcs


def klass(op):
    base = op.split(".")[0]
    if base in ("FFMA", "FMUL", "FADD", "MUFU", "FMNMX", "FSETP", "FSEL"):
        return base
    if base in ("DFMA", "DMUL", "DADD", "DSETP"):
        return "FP64"
    if base in ("LDG", "STG", "LDL", "STL", "LDS", "STS", "LDC", "ULDC", "ATOMG", "RED"):
        return {"LDG": "global_load", "STG": "global_store", "LDL": "local_load",
                "STL": "local_store", "LDS": "shared_load", "STS": "shared_store",
                "LDC": "constant_load", "ULDC": "constant_load", "ATOMG": "global_atomic",
                "RED": "global_atomic"}[base]
    if base in ("BRA", "BRX", "JMP", "CALL", "RET", "EXIT", "BSSY", "BSYNC", "WARPSYNC", "BREAK"):
        return "branch"
    if base in ("I2F", "F2I", "F2F", "I2FP", "F2FP", "FRND"):
        return "convert"
    if base.startswith("I") or base in ("LOP3", "SHF", "LEA", "SEL", "PRMT", "ISETP", "POPC",
                                         "FLO", "BMSK", "SGXT", "UIADD3", "ULOP3", "USHF",
                                         "UMOV", "ULEA", "UISETP", "USEL", "UIMAD"):
        return "integer"
    if base in ("MOV", "NOP", "S2R", "S2UR", "CS2R", "R2UR", "PLOP3", "P2R", "R2P", "SHFL",
                "VOTE", "DEPBAR", "BAR", "MEMBAR"):
        return "move_or_control"
    return "other"


def loops_of(instrs):
    """Loops as (start, end) address intervals: a branch at `end` back to `start` <= end."""
    out = []
    for addr, op, args in instrs:
        if op.startswith("BRA"):
            m = re.search(r"0x([0-9a-f]+)", args)
            if m and int(m.group(1), 16) <= addr:
                out.append((int(m.group(1), 16), addr))
    # Merge loops with the same head (several back edges of one loop).
    merged = {}
    for s, e in out:
        merged[s] = max(merged.get(s, e), e)
    return sorted(merged.items())


def nesting(loops):
    """Top-level loops and, for each, the loops inside it."""
    top = []
    for s, e in sorted(loops, key=lambda l: (l[0], -l[1])):
        if top and s >= top[-1][0] and e <= top[-1][1]:
            top[-1][2].append((s, e))
        else:
            top.append((s, e, []))
    return top


def ex2_in(instrs, start, end):
    return sum(1 for a, op, _ in instrs if start <= a <= end and op.startswith("MUFU.EX2"))


def count_loop(instrs, start, end, inner, components):
    """Instructions of one path-step of a step loop: its body once, each nested loop times its trip
    count, all divided by the path-steps per iteration (the DADDs of S in the body outside nested
    loops). A nested loop is a pass over mixture components whose count is a run-time value: with
    u exponentials (MUFU.EX2) per iteration it runs (K - 1) // u times (the online softmax peels the
    first component, which needs no exponential, and the remainder is inline code already in the
    body; the two-pass evaluation's accumulating pass is then undercounted by at most one
    iteration), else with m maxima (FMNMX) K // m times (the two-pass evaluation's first pass,
    which takes the largest logit); any other nested loop (over coordinates of a run-time d)
    counts once."""
    weights = []
    for s, e in inner:
        u = ex2_in(instrs, s, e)
        m = sum(1 for a, op, _ in instrs if s <= a <= e and op.startswith("FMNMX"))
        weights.append((s, e, max(1, (components - 1) // u) if u else
                        max(1, components // m) if m else 1))
    steps = sum(1 for a, op, _ in instrs if start <= a <= end and op.startswith("DADD")
                and not any(s <= a <= e for s, e, _ in weights)) or 1
    counts, total, local = {}, 0.0, False
    for addr, op, _ in instrs:
        if not start <= addr <= end:
            continue
        w = 1.0
        for s, e, t in weights:
            if s <= addr <= e:
                w *= t
        c = klass(op)
        counts[c] = counts.get(c, 0.0) + w / steps
        total += w / steps
        local |= c in ("local_load", "local_store")
    return total, counts, local, steps, [{"span": [hex(s), hex(e)],
                                          "exp_per_iteration": ex2_in(instrs, s, e), "trips": t}
                                         for s, e, t in weights]


def resource_usage(cuobjdump, obj, arch):
    text = subprocess.run([cuobjdump, "-res-usage", "-arch", arch, obj], capture_output=True,
                          text=True).stdout
    usage, name = {}, None
    for line in text.splitlines():
        m = re.search(r"Function (\S+):", line)
        if m:
            name = m.group(1)
            continue
        m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", line)
        if m and name:
            usage[name] = {"registers": int(m.group(1)), "stack_bytes": int(m.group(2)),
                           "shared_bytes": int(m.group(3)), "local_bytes": int(m.group(4))}
    return usage


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                             text=True).stdout.splitlines()
        return dict(zip(names, out))
    except OSError:
        return {n: n for n in names}


def short_name(pretty):
    """forward_taep_kernel<2, (taep::physics::Sharing)1> -> forward_taep_kernel<2>/shared"""
    m = re.search(r"(\w+_kernel)(<([^>]*)>)?", pretty)
    if not m:
        return pretty
    args = [x.strip() for x in (m.group(3) or "").split(",") if x.strip()]
    mode = None
    for x in list(args):
        if "Sharing)" in x:
            mode = {"1": "shared", "2": "non_shared"}.get(x.split(")")[-1], x)
            args.remove(x)
    name = m.group(1) + (f"<{', '.join(args)}>" if args else "")
    return name + (f"/{mode}" if mode else "")


def analyse(build, arch, components):
    cuobjdump = find_cuobjdump()
    if not cuobjdump:
        raise SystemExit("sass_count: cuobjdump not found (install the CUDA toolkit's, or "
                         "pip install nvidia-cuda-cuobjdump)")
    kernels = []
    for name in OBJECTS:
        obj = os.path.join(build, "CMakeFiles", "taep.dir", "kernels", name + ".cu.o")
        if not os.path.exists(obj):
            continue
        proc = subprocess.run([cuobjdump, "-sass", "-arch", arch, obj], capture_output=True,
                              text=True, env=tool_env())
        if proc.returncode != 0:
            raise SystemExit(f"sass_count: cuobjdump failed on {obj}: {proc.stderr.strip()}")
        funcs = parse_sass(proc.stdout)
        usage = resource_usage(cuobjdump, obj, arch)
        pretty = demangle(list(funcs))
        for mangled, instrs in funcs.items():
            entry = {"kernel": short_name(pretty[mangled]), "object": name,
                     "instructions": len(instrs), **usage.get(mangled, {}), "step_loop": None}
            # The step loop: the top-level loop with the most exponentials (the component passes).
            top = nesting(loops_of(instrs))
            best = max(top, key=lambda l: ex2_in(instrs, l[0], l[1]), default=None)
            if best and ex2_in(instrs, best[0], best[1]) > 0:
                total, counts, local, steps, inner = count_loop(instrs, best[0], best[1], best[2],
                                                                components)
                entry["step_loop"] = {"span": [hex(best[0]), hex(best[1])],
                                      "instructions_per_path_step": total,
                                      "by_class": dict(sorted(counts.items())),
                                      "local_memory_in_loop": local, "steps_per_iteration": steps,
                                      "nested_loops": inner}
            kernels.append(entry)
    return kernels


# The paper's ring (d = 2, K = 8, docs/physics.md section 2) and its budgets per path-step (issue 15).
RING = {"shared": "forward_taep_kernel<2, 8>/shared", "non_shared": "forward_taep_kernel<2, 8>/non_shared"}
BUDGET = {"shared": 320, "non_shared": 450}


def cases(kernels):
    """Per kernel with a step loop: its count per path-step."""
    return {k["kernel"]: {key: k["step_loop"][key] for key in
                          ("instructions_per_path_step", "by_class", "local_memory_in_loop",
                           "steps_per_iteration")}
            for k in kernels if k["step_loop"]}


def check(named):
    """What is over budget: the ring cases, and local memory in any forward kernel's step loop."""
    bad = []
    for key, name in RING.items():
        c = named.get(name)
        if c is None:
            bad.append(f"{name}: not found")
        elif c["instructions_per_path_step"] > BUDGET[key]:
            bad.append(f"{name}: {c['instructions_per_path_step']:.0f} > {BUDGET[key]} per path-step")
    bad += [f"{n}: local memory in the step loop" for n, c in named.items()
            if n.startswith("forward_taep_kernel") and c["local_memory_in_loop"]]
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the counts to this file")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--components", type=int, default=8,
                    help="mixture components K of the case counted (the ring: 8)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a ring case is over budget or a forward step loop uses local memory")
    a = ap.parse_args()
    build = os.environ.get("BUILD_DIR", "build")
    kernels = analyse(build, a.arch, a.components)
    if not kernels:
        raise SystemExit(f"sass_count: no CUDA kernel objects under {build} (built with CUDA?)")
    named = cases(kernels)
    for k in kernels:
        print(f"{k['kernel']:40} {k['instructions']:6d} instr  regs {k.get('registers', '?'):>3}  "
              f"stack {k.get('stack_bytes', '?'):>4} B  local {k.get('local_bytes', '?'):>4} B")
    for name, c in named.items():
        cl = c["by_class"]
        print(f"  {name:40} {c['instructions_per_path_step']:7.0f} per path-step  FFMA "
              f"{cl.get('FFMA', 0):.0f} FMUL {cl.get('FMUL', 0):.0f} MUFU {cl.get('MUFU', 0):.0f} "
              f"LDG {cl.get('global_load', 0):.0f} branch {cl.get('branch', 0):.0f}  local in loop "
              f"{c['local_memory_in_loop']}")
    if a.json:
        with open(a.json, "w") as f:
            commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True).stdout.strip() or "unknown"
            json.dump({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                       "commit": commit, "arch": a.arch, "components": a.components,
                       "method": "static: step-loop body once, nested component loops times their "
                                 "trip count, both arms of every branch (an upper bound), divided by "
                                 "the path-steps per iteration (the DADDs of S)",
                       "ring": {key: {"kernel": name, **named[name]} for key, name in RING.items()
                                if name in named},
                       "budget": BUDGET, "cases": named, "kernels": kernels}, f, indent=1)
    if a.check:
        bad = check(named)
        for b in bad:
            print(f"sass_count: {b}", file=sys.stderr)
        if bad:
            sys.exit(1)


if __name__ == "__main__":
    main()
