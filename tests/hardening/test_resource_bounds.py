"""Resource bounds: weights or inputs that cannot fit in memory fail early, with a message naming
the layer (or input), the shape and both sizes, instead of an out-of-memory kill.

The cases with real sizes ask for 1.5x the memory available now (``irtool.memory``: MemAvailable, or
a cgroup v2 limit where it is lower): with Linux's overcommit NumPy would grant such a request and
the kernel would kill the process while the initializer writes it. Nothing is allocated here.
"""

from __future__ import annotations

import numpy as np
import pytest

import irtool
from irtool import layers, memory
from irtool.runtime import ort
from irtool.runtime.ort import TensorInfo


@pytest.fixture
def available() -> int:
    value = memory.available_memory()
    assert value is not None and value > 0, "this platform should say how much memory is available"
    return value


def test_weights_beyond_available_memory_fail_before_the_initializer_runs(available, monkeypatch):
    drawn = []
    monkeypatch.setattr(
        irtool.initializers.GlorotUniform, "__call__", lambda self, shape, dtype=None: drawn.append(shape)
    )
    units = int(available * 1.5 / 4 / 1024) + 1  # a float32 kernel of 1.5x the memory available
    with pytest.raises(memory.MemoryLimitError) as caught:
        layers.Dense(units, name="big")(irtool.Input((1024,)))
    message = " ".join(str(caught.value).split())
    assert f"Layer 'big': weight 'kernel' of shape (1024, {units}) float32" in message
    assert f"{1024 * units * 4:,} bytes" in message and "of memory available" in message
    assert drawn == []  # refused before a byte was drawn


def test_a_model_just_under_the_limit_builds(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * 16 * 8 + 4 * 8)  # the kernel and bias exactly
    model = irtool.Model(inputs := irtool.Input((16,)), layers.Dense(8)(inputs))
    assert model.count_params() == 16 * 8 + 8
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * 16 * 8 - 1)
    with pytest.raises(memory.MemoryLimitError, match=r"weight 'kernel' of shape \(16, 8\) float32 needs 512 bytes"):
        layers.Dense(8)(irtool.Input((16,)))


def test_an_unknown_amount_of_memory_checks_nothing(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    memory.check_allocation(10**30, "anything")


def test_random_inputs_beyond_available_memory(available):
    rows = int(available * 1.5 / 4 / 1000) + 1
    with pytest.raises(memory.MemoryLimitError) as caught:
        ort.random_inputs([TensorInfo("pixels", np.dtype("float32"), ("batch", 1000))], batch_size=rows)
    assert f"the random input 'pixels' of shape ({rows}, 1000)" in str(caught.value)


def test_an_input_with_a_huge_declared_dimension_fails_at_its_first_weight():
    inputs = irtool.Input((10**6, 10**6), name="huge")  # symbolic: nothing is allocated for it
    with pytest.raises(memory.MemoryLimitError, match=r"weight 'embeddings' of shape \(1000000000000, 4\)"):
        layers.Embedding(10**12, 4, name="lookup")(inputs)


def test_sizes_are_counted_and_named_exactly():
    assert [memory.format_bytes(n) for n in (5, 2048, 3 * 2**40)] == ["5 bytes", "2.0 KiB", "3.0 TiB"]
    assert memory.array_bytes((10**12, 10**12), 8) == 8 * 10**24  # Python ints: no int64 overflow
