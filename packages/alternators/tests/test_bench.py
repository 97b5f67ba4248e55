"""The benchmark's JSON figures (tiny setting) and a CUDA smoke test (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from alternators.bench import BenchConfig, run_benchmark
from alternators.models import MODEL_NAMES, ModelConfig, build_model


def test_benchmark_reports_every_model():
    result = run_benchmark(BenchConfig(n_train=4, n_steps=12, epochs=1, batch_size=4,
                                       n_sample=3, hidden=8, device="cpu"))
    assert set(result["models"]) == set(MODEL_NAMES)
    for figures in result["models"].values():
        assert figures["train_seconds_per_epoch"] > 0
        assert figures["sample_sequences_per_second"] > 0
    assert result["alternator_vs_rnn"]["train_speedup"] > 0
    assert result["device"].startswith("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_models_run_on_cuda():
    for name in MODEL_NAMES:
        model = build_model(ModelConfig(name=name, hidden=16), 5, 3).cuda()
        x = torch.randn(2, 8, 5, device="cuda")
        model.loss(x, torch.randn(2, 8, 3, device="cuda"))["loss"].backward()
        mask = torch.arange(8, device="cuda") < 4
        assert model.impute(x, mask, 2).z_samples.device.type == "cuda"
