"""The two functions every array between taep and a model function goes through
(python/src/taep_module.cpp): array_view (taep's buffer -> the array the function gets: numpy on the
host, a DLPack array on a GPU) and accept_array + read_host (what the function returns, from any
DLPack producer or buffer, checked and read). The torch cases are in test_torch.py."""

import numpy as np
import pytest

import taep
from taep import _taep
from conftest import SMALL

BUFFER = np.arange(6, dtype=np.float32).reshape(2, 3)


def test_host_view_is_a_read_only_numpy_array_over_taeps_buffer():
    a = _taep._array_view(1, 0)  # DLPack device type 1: the CPU
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 3)
    assert np.array_equal(a, BUFFER) and not a.flags.writeable and not a.flags.owndata
    assert a.__dlpack_device__() == (1, 0)


def test_device_view_is_a_dlpack_array_on_that_device():
    a = _taep._array_view(2, 3)  # CUDA device 3 (never dereferenced here)
    assert not isinstance(a, np.ndarray) and hasattr(a, "__dlpack__")
    assert a.__dlpack_device__() == (2, 3)


@pytest.mark.parametrize("value", [
    BUFFER,
    BUFFER.astype(np.float64),
    np.asfortranarray(BUFFER),                           # strides other than row-major
    np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2] * 0 + BUFFER,
    BUFFER.tolist(),                                     # no DLPack: numpy.asarray makes one
])
def test_accepted_outputs_are_read_as_they_are(value):
    got = _taep._accept_array(value, [2, 3])
    assert got.dtype == np.float32 and np.array_equal(got, BUFFER)


def test_a_strided_view_is_read_without_a_copy_first():
    big = np.zeros((2, 6), dtype=np.float64)
    big[:, 1::2] = BUFFER
    assert np.array_equal(_taep._accept_array(big[:, 1::2], [2, 3]), BUFFER)


def test_refused_outputs_name_what_they_got():
    cases = [
        (BUFFER.astype(np.int32), "float32 or float64 values (got int32 at t = 0.5)"),
        (BUFFER.astype(np.float16), "got float16"),
        (BUFFER[:1], "shape (2, 3) (got shape (1, 3) at t = 0.5)"),
        (BUFFER.ravel(), "got shape (6,)"),
        (np.array([[0, 1, np.nan], [3, 4, 5]], np.float32), "non-finite values at t = 0.5 (rows [0]"),
        (object(), "an array of numbers (got object"),
        (_taep._array_view(2, 0), "on cpu, where taep's buffers are (got one on cuda:0"),
    ]
    for value, text in cases:
        with pytest.raises(taep.ConfigError) as e:
            _taep._accept_array(value, [2, 3])
        assert e.value.field == "score" and text in e.value.message, e.value.message


def test_a_run_reads_float64_and_strided_outputs_like_float32():
    # The model's output is rounded to float once, wherever it came from: the same paths.
    def score(x, t):
        return -np.asarray(x, np.float32)

    def score_f64_strided(x, t):
        wide = np.zeros((len(x), 2 * x.shape[1]))
        wide[:, ::2] = -np.asarray(x, np.float64)
        return wide[:, ::2]

    def div(x, t):
        return np.full(len(x), -2.0, np.float32)

    a = taep.paths(SMALL, 0, 300, score=score, divergence=div, schedule__steps=20)
    b = taep.paths(SMALL, 0, 300, score=score_f64_strided, divergence=lambda x, t: [-2.0] * len(x),
                   schedule__steps=20)
    assert np.array_equal(a["S"], b["S"])
