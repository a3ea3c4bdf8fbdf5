"""The external test set (benchmarks/external_models.py): buildable, cleanly named, safe to load."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "external_models.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("nnenergy_external_models", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


em = _load_module()
SIZE = 96
# Three representative models for the save/load round trip (kept small for speed): reshape,
# permute and cropping (channel shuffle); attention and a Rescaling with an array offset; a
# transposed convolution with skip concatenations.
ROUND_TRIP = ["ShuffleNetV2", "ViTTi16", "UNet"]


@pytest.fixture(autouse=True, scope="module")
def _fresh_session():
    # Once for the module: each clear_session is a full garbage collection (~0.45 s here), and the
    # models need no fresh name counters (names are unique within a model whatever the counters).
    yield
    keras.backend.clear_session()


def _check_layers(model: keras.Model) -> list[str]:
    names = [layer.name for layer in model.layers]
    assert len(names) > 5
    assert len(set(names)) == len(names), sorted({n for n in names if names.count(n) > 1})
    for layer in model.layers:
        assert type(layer).__name__ != "Lambda", layer.name
        # Only built-in Keras layers (no custom classes), and no bare ops outside layers.
        assert type(layer).__module__.startswith("keras."), (layer.name, type(layer).__module__)
    assert len(model.operations) == len(model.layers)
    return names


def test_registry():
    assert len(em.NAMES) >= 12
    assert len(set(em.NAMES)) == len(em.NAMES)
    assert em.FAMILY == "external"


def test_not_in_keras_applications():
    applications = {n.lower() for n in dir(keras.applications) if not n.startswith("_")}
    assert not applications & {n.lower() for n in em.NAMES}


@pytest.mark.parametrize("name", em.NAMES)
def test_builds_with_clean_layers(name):
    model = em.build(name, SIZE, classes=10)
    assert model.name == name
    assert tuple(model.input.shape) == (None, SIZE, SIZE, 3)
    _check_layers(model)


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_save_load_safe_mode(name, tmp_path):
    model = em.build(name, SIZE, classes=10)
    path = tmp_path / f"{name}_{SIZE}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == _check_layers(model)
    assert loaded.count_params() == model.count_params()


def test_invalid_sizes_are_refused_and_skipped(tmp_path, capsys):
    assert em.check_size("ViTTi16", 100) is not None
    assert em.check_size("ShuffleNetV2", 100) is None
    assert em.check_size("SqueezeNet11", 64) is not None
    with pytest.raises(ValueError):
        em.build("UNet", 100)
    for name in em.NAMES:
        assert {96, 128, 160, 224} <= set(em.accepted_sizes(name))
    assert em.main(["--write", str(tmp_path), "--sizes", "100", "--names", "ViTTi16,MixerS16,UNet"]) == 0
    assert not list(tmp_path.iterdir())
    assert "skip ViTTi16 at 100" in capsys.readouterr().err
