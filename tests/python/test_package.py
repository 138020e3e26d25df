"""The package's surface: every public function has a docstring and a stub with its signature."""

import ast
import inspect
import pathlib

import taep

FUNCTIONS = [name for name in taep.__all__ if inspect.isfunction(getattr(taep, name))]


def stub_functions():
    tree = ast.parse((pathlib.Path(taep.__file__).parent / "__init__.pyi").read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_function_has_a_docstring_and_a_stub():
    stubs = stub_functions()
    assert set(stubs) == set(FUNCTIONS)
    for name in FUNCTIONS:
        assert inspect.getdoc(getattr(taep, name)), name
        stub, real = stubs[name].args, inspect.signature(getattr(taep, name)).parameters
        names = [a.arg for a in stub.posonlyargs + stub.args + stub.kwonlyargs]
        if stub.vararg:
            names.append(stub.vararg.arg)
        if stub.kwarg:
            names.append(stub.kwarg.arg)
        assert names == list(real), name


def test_package_files():
    here = pathlib.Path(taep.__file__).parent
    assert (here / "py.typed").exists()
    for cls in (taep.Error, taep.ConfigError, taep.BackendUnavailable, taep.CudaError):
        assert inspect.getdoc(cls) and cls.__module__ == "taep"
