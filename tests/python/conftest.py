"""Shared fixtures of the Python suite (ctest test "python", tests/CMakeLists.txt).

ctest sets PYTHONPATH to the build tree's package (build/python), TAEP_CLI to the `taep` binary of
the same build and TAEP_FIXTURE_DIR to tests/fixtures, so the suite compares the package with the
command built from the same sources.
"""

import json
import os
import pathlib
import subprocess

import pytest

FIXTURES = pathlib.Path(os.environ.get("TAEP_FIXTURE_DIR", pathlib.Path(__file__).parents[1] / "fixtures"))

# Small enough for the whole suite to stay fast on two cores; 20000 paths span several reduction
# blocks (4096) and the 16384-path histogram pilot, so the block order of the reduction matters.
SMALL = {
    "model": {"type": "exact", "collapse": {"modes": 1, "eps": 0.02}},
    "schedule": {"steps": 100},
    "run": {"paths": 20000, "seed": 5, "backend": "cpu"},
    "histogram": {"bins": 50},
}

MLP = {
    "model": {"type": "mlp", "weights": str(FIXTURES / "ring8_trained.safetensors")},
    "schedule": {"steps": 40},
    "run": {"paths": 3000, "seed": 3, "backend": "cpu"},
}

TINY_TRAIN = {
    "optimizer": {"steps": 200, "batch": 256},
    "network": {"hidden": [32, 32]},
    "run": {"threads": 1},
}


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("TAEP_CLI")
    if not path:
        pytest.skip("TAEP_CLI is not set (run the suite through ctest)")

    def call(*args, cwd=None):
        subprocess.run([path, *map(str, args)], check=True, cwd=cwd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    return call


def write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


def statistics(doc):
    """A result document without what two runs of one config may differ in (README.md: provenance
    and performance)."""
    return {k: v for k, v in doc.items() if k not in ("performance", "provenance")}
