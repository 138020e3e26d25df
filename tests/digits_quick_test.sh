#!/bin/bash
# `taep experiment digits --quick` end to end (ctest digits_quick): exports scikit-learn's digits with
# tools/export_digits.py, runs the quick study and checks its trend checks (exit status 1 when one
# fails) and its outputs. Skips (77) where no Python has scikit-learn.
set -euo pipefail
TAEP=$1
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=""
for p in "${TAEP_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$p" ] && "$p" -c 'import sklearn, numpy' 2>/dev/null && PY=$p && break
done
if [ -z "$PY" ]; then echo "no Python with scikit-learn: skipped"; exit 77; fi
"$PY" "$SRC/tools/export_digits.py" --out "$WORK/data" >/dev/null
"$TAEP" experiment digits --quick --data "$WORK/data" --out-dir "$WORK/out" --no-plots -q
for f in digits.json digits.md against_final/track.json against_final/track.csv \
         against_final/track.md against_empirical/track.json models/digits.safetensors \
         snapshots/manifest.json; do
  [ -s "$WORK/out/$f" ] || { echo "missing $f"; exit 1; }
done
"$PY" - "$WORK/out/digits.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["checks"]
assert c["all"], c
rows = d["against_final"]["rows"]
assert len(rows) == 4 and rows[-1]["is_reference"] and rows[-1]["taep"] is None, rows[-1]
assert all(r["coverage"] is not None for r in rows)
assert all(r["taep"] is not None for r in d["against_empirical"]["rows"])
assert d["against_final"]["rows"][0]["hutchinson"]["probes"] == 2
print("digits quick: checks", c)
PY
