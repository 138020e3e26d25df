"""test_torch.py where the suite's interpreter has no torch (CI's pyenv python3): that module runs
under another interpreter that has torch, numpy and pytest and the same extension suffix, so that it
imports the same build/python/taep/_taep*.so (a CPython extension works with every patch release of
its minor version): $TAEP_TORCH_PYTHON, else /usr/bin/python3 with Debian's python3-torch
(tools/install_deps.sh --torch, which CI runs). Skipped only when the suite's interpreter has torch
itself (test_torch.py then runs in it) or no such interpreter exists."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

HERE = pathlib.Path(__file__).parent


def torch_interpreter():
    """An interpreter other than this one that can run test_torch.py, or None."""
    probe = ("import sysconfig, torch, numpy, pytest; "
             "print(sysconfig.get_config_var('EXT_SUFFIX'))")
    for py in [os.environ.get("TAEP_TORCH_PYTHON"), "/usr/bin/python3"]:
        if not py or not os.access(py, os.X_OK):
            continue
        if os.path.realpath(py) == os.path.realpath(sys.executable):
            continue
        r = subprocess.run([py, "-c", probe], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == sysconfig.get_config_var("EXT_SUFFIX"):
            return py
    return None


def test_torch_module_under_an_interpreter_with_torch():
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("this interpreter has torch: test_torch.py runs here")
    py = torch_interpreter()
    if py is None:
        pytest.skip("no torch, and no other interpreter with torch, numpy and pytest for "
                    f"{sysconfig.get_config_var('EXT_SUFFIX')} (tools/install_deps.sh --torch)")
    # The environment ctest set (PYTHONPATH to build/python, TAEP_CLI, TAEP_FIXTURE_DIR) carries over.
    r = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        str(HERE / "test_torch.py")],
                       capture_output=True, text=True, timeout=600, cwd=HERE)
    print(f"{py}:\n{r.stdout[-3000:]}")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "skipped" not in r.stdout, r.stdout[-3000:]
