import random

import numpy as np
import pytest
import torch

from physml_core import DeviceError, device_summary, resolve_device, seed_everything
from physml_core.device import autocast, available_devices


def test_resolve_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    if not torch.cuda.is_available():
        assert auto.type in ("cpu", "mps")
    assert resolve_device(None) == auto


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_names_available_devices(spec):
    with pytest.raises(DeviceError, match=r"available: cpu"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_device_spec(spec):
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(spec)


def test_wrong_type():
    with pytest.raises(TypeError):
        resolve_device(3)  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    with pytest.raises(DeviceError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert resolve_device("cuda").type == "cuda"


def test_seed_everything_reproduces_all_rngs():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "3", True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises((TypeError, ValueError)):
        seed_everything(bad)


def test_autocast_is_noop_on_cpu_by_default():
    layer = torch.nn.Linear(4, 4)
    with autocast("cpu"):
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.float32


def test_autocast_bf16_on_cpu_when_asked():
    layer = torch.nn.Linear(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        with autocast("cpu", "fp16"):
            pass
    with pytest.raises(ValueError, match="unknown autocast"):
        with autocast("cpu", "int8"):
            pass


def test_summary_and_available():
    assert "cpu" in available_devices()
    line = device_summary("cpu")
    assert line.startswith("cpu (") and "torch" in line and "\n" not in line
