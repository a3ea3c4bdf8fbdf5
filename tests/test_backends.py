"""The meter is backend-agnostic: the tiny sweep under Keras on PyTorch (as on the GPU machines,
which have no TensorFlow), and a GPU sweep refused clearly where there is no GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nnenergy.measure import backends
from nnenergy.measure.hardware import current_profile_name
from nnenergy.measure.sweep import Sweep
from nnenergy.measure.sweep_spec import SweepInputError, SweepSpec

REPO = Path(__file__).resolve().parents[1]


def test_profile_names_carry_backend_and_device(monkeypatch):
    cpu = current_profile_name()
    assert backends.profile_name("cpu", "tensorflow") == cpu  # the shipped datasets' names stay valid
    assert backends.profile_name("cpu", "torch") == f"{cpu}-torch"
    assert backends.profile_name("gpu", "torch", "NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3-torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.backend_name() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", "/nonexistent")
    assert backends.backend_name() == "tensorflow"


def _spec(tmp_path, **over) -> dict:
    return {"name": "t", "architectures": ["tiny_mlp"], "batch_sizes": [1], "input_sizes": [32],
            "output_dir": str(tmp_path / "d"), "cache_dir": str(tmp_path / "c"), **over}


def test_gpu_sweeps_need_long_windows_and_a_gpu(tmp_path):
    with pytest.raises(SweepInputError, match="NVML"):
        SweepSpec.from_config(_spec(tmp_path, device="gpu"))  # the default windows are 0.1 s
    with pytest.raises(SweepInputError, match="sweep.device"):
        SweepSpec.from_config(_spec(tmp_path, device="tpu"))
    spec = SweepSpec.from_config(_spec(tmp_path, device="gpu", protocol={"min_seconds": 0.5},
                                       layer={"min_seconds": 0.5}))
    if backends.current().has_gpu():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SweepInputError, match="sees no GPU"):
        Sweep(spec)
    assert not (tmp_path / "d").exists()  # nothing written


@pytest.mark.slow
def test_tiny_sweep_under_keras_on_torch(tmp_path):
    """The whole measure path (protocol, in-context attribution, isolated layers, datasheet) on
    the PyTorch backend, in its own process (Keras fixes its backend at first import), through
    the GPU machines' entry point: no Hydra, no MLflow (scripts/device_gpu_sweep.sh runs it)."""
    env = {**os.environ, "KERAS_BACKEND": "torch", "KINETO_LOG_LEVEL": "5"}
    out = tmp_path / "data" / "tiny"
    cmd = [sys.executable, "scripts/measure_standalone.py", "sweep=tiny", f"output_dir={out}",
           f"cache_dir={tmp_path / 'cache'}", "--lock-wait=300"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"profile {current_profile_name()}-torch" in proc.stdout
    models = pd.read_parquet(out / "models.parquet")
    layers = pd.read_parquet(out / "layers.parquet")
    assert len(models) == 4 and (models["energy_j"] / models["latency_s"]).between(1, 5000).all()  # watts
    assert set(models["backend"]) == {"torch"} and set(models["device"]) == {"cpu"}
    assert set(models["profile"]) == {f"{current_profile_name()}-torch"}
    assert models["tensorflow_version"].isna().all()
    # torch.profiler ranges per layer: every compute layer got op time, and shares add up to ~1
    conv = layers[(layers["layer_type"] == "Conv2D")]
    assert (conv["ctx_op_time_s"] > 0).all()
    shares = layers.groupby("config_id")["ctx_share"].sum()
    assert ((shares > 0.95) & (shares <= 1.0 + 1e-9)).all(), shares
    assert layers["iso_energy_j"].notna().all()
    assert "Keras backend torch" in (out / "DATASHEET.md").read_text()


def test_standalone_sweeps_compose_like_hydra_and_refuse_bad_input(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    import measure_standalone as ms

    paper_gpu = ms.compose("paper_gpu")
    assert paper_gpu["device"] == "gpu" and paper_gpu["protocol"]["min_seconds"] == 0.5
    assert paper_gpu["threads"] == {"intra_op": 0, "inter_op": 1}  # from _measurement, two defaults down
    assert len(paper_gpu["architectures"]) == 22  # from paper
    grouped = ms.compose("grouped")  # `_self_` in its defaults: its own keys win over `space`'s
    assert grouped["name"] == "space" and grouped["generated"]["variant_families"] == ["Grouped"]
    assert grouped["architectures"] == [] and grouped["isolate_share"] == 0.05
    cfg = ms.apply_overrides(ms.compose("tiny"), ["protocol.rounds=5", "batch_sizes=[1,8]"])
    assert cfg["protocol"]["rounds"] == 5 and cfg["batch_sizes"] == [1, 8]
    assert ms.main(["sweep=nosuch"]) == 2
    assert ms.main(["sweep=tiny", f"cache_dir={tmp_path}"]) == 2  # output_dir is an interpolation here
    assert ms.main(["sweep=tiny", f"output_dir={tmp_path / 'o'}", f"cache_dir={tmp_path}", "typo=1"]) == 2
    assert not (tmp_path / "o").exists()
