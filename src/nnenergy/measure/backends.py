"""The framework that runs the measured models: Keras 3 on TensorFlow, or on PyTorch.

The CPU machines have TensorFlow; the GPU machines have PyTorch (and JAX) but no TensorFlow,
so the meter talks to one small interface: build a compiled pass, make inputs, wait for the
device, fix thread pools, trace a pass with the framework's profiler. Keras picks the backend
from `KERAS_BACKEND` (or `~/.keras/keras.json`) when first imported; the backend and the device
are part of the hardware profile and of every row's provenance, since the same model on the
same CPU runs other kernels under another framework.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from nnenergy.measure.hardware import current_profile
from nnenergy.measure.incontext import InContextProfile

SUPPORTED = ("tensorflow", "torch")
DEVICES = ("cpu", "gpu")
# The profile names of TensorFlow on a CPU carry no backend suffix: they were the only kind first.
DEFAULT_BACKEND = "tensorflow"


class BackendError(RuntimeError):
    """A backend or device that cannot measure here; the message is one line for the user."""


def backend_name() -> str:
    """The Keras backend this process will use, read as Keras reads it, without importing Keras."""
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
        try:
            name = json.loads((home / "keras.json").read_text()).get("backend")
        except (OSError, ValueError):
            name = None
    return name or DEFAULT_BACKEND


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def profile_name(device: str = "cpu", backend: str | None = None, gpu_model: str | None = None) -> str:
    """The hardware profile a measurement of `device` under `backend` belongs to.

    CPU: the CPU's profile (`amd-epyc-f25m17-avx512-2c`), plus `-<backend>` unless TensorFlow.
    GPU: the GPU's name and the backend (`nvidia-h100-80gb-hbm3-torch`): the host CPU matters
    little next to the GPU, and a GPU's data never mixes with a CPU's.
    """
    backend = backend or backend_name()
    if device == "gpu":
        return f"{_slug(gpu_model or current(device).gpu_model())}-{backend}"
    cpu = current_profile().name
    return cpu if backend == DEFAULT_BACKEND else f"{cpu}-{backend}"


class Backend:
    """What the sweep needs from a framework. Subclasses import it lazily."""

    name = ""
    errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError)

    def __init__(self, device: str):
        if device not in DEVICES:
            raise BackendError(f"device must be one of {DEVICES}, not {device!r}")
        self.device = device
        if device == "gpu" and not self.has_gpu():
            raise BackendError(f"device=gpu, but {self.name} sees no GPU on this machine")

    # -- identity -----------------------------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def has_gpu(self) -> bool:
        raise NotImplementedError

    def gpu_model(self) -> str:
        raise NotImplementedError

    def provenance(self) -> dict:
        import keras

        gpu = self.gpu_model() if self.device == "gpu" else None
        return {"backend": self.name, "backend_version": self.version(), "device": self.device,
                "keras_version": keras.__version__,
                "tensorflow_version": self.version() if self.name == "tensorflow" else None,
                "profile": profile_name(self.device, self.name, gpu)}

    # -- running ------------------------------------------------------------------------
    def set_threads(self, intra_op: int, inter_op: int) -> dict:
        raise NotImplementedError

    def random(self, shape: tuple[int, ...], dtype: str = "float32"):
        """A fixed random tensor on the measured device."""
        import keras
        import numpy as np

        dt = dtype if "float" in dtype else "float32"
        return keras.ops.convert_to_tensor(np.random.default_rng(1).random(shape, dtype="float32").astype(dt))

    def compile_model(self, model, in_shape: tuple[int, ...]) -> Callable:
        """`x -> model(x, training=False)`, compiled where the backend compiles."""
        raise NotImplementedError

    def compile_fn(self, fn: Callable) -> Callable:
        raise NotImplementedError

    def sync(self) -> Callable[[], None] | None:
        """A callable that waits for the device's queued work (None where calls are synchronous)."""
        return None

    def no_op(self) -> Callable[[], object]:
        """The cheapest compiled call: the floor under every isolated layer."""
        raise NotImplementedError

    def profile(self, fn: Callable[[], object], layers: dict, passes: int) -> InContextProfile:
        """Trace `passes` calls of a warmed-up `fn`; op time per layer (`layers`: name -> layer)."""
        raise NotImplementedError


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def __init__(self, device: str):
        import tensorflow as tf

        self.tf = tf
        self.errors = (tf.errors.OpError, ValueError, RuntimeError)
        super().__init__(device)
        if device == "cpu" and self.has_gpu():  # TF would place the ops on the GPU: hide it
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:
                raise BackendError("device=cpu on a machine with a GPU, but TensorFlow has already started on the "
                                   "GPU; set CUDA_VISIBLE_DEVICES= to measure the CPU") from None

    def version(self) -> str:
        return self.tf.__version__

    def has_gpu(self) -> bool:
        return bool(self.tf.config.list_physical_devices("GPU"))

    def gpu_model(self) -> str:
        gpus = self.tf.config.list_physical_devices("GPU")
        if not gpus:
            return "none"
        return self.tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")

    def set_threads(self, intra_op: int, inter_op: int) -> dict:
        tf = self.tf
        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        except RuntimeError:  # already initialised in this process (tests): record what is in force
            pass
        return {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default(on)"),
        }

    def random(self, shape, dtype="float32"):
        return self.tf.random.uniform(shape, dtype=dtype if "float" in dtype else "float32", seed=1)

    def compile_model(self, model, in_shape):
        tf = self.tf
        # One trace for any batch size: the batch dimension is left open.
        return tf.function(lambda x: model(x, training=False),
                           input_signature=[tf.TensorSpec((None, *in_shape), tf.float32)])

    def compile_fn(self, fn):
        return self.tf.function(fn)

    def sync(self):
        # CPU ops complete before a tf.function returns; GPU work is queued.
        return self.tf.test.experimental.sync_devices if self.device == "gpu" else None

    def no_op(self):
        x = self.tf.zeros((1,))
        fn = self.tf.function(self.tf.identity)
        return lambda: fn(x)

    def profile(self, fn, layers, passes):
        from nnenergy.measure.incontext import profile_tensorflow

        return profile_tensorflow(fn, list(layers), passes)


class TorchBackend(Backend):
    """Keras 3 on PyTorch: eager passes under `torch.no_grad()`, as PyTorch users run inference."""

    name = "torch"

    def __init__(self, device: str):
        import torch

        self.torch = torch
        super().__init__(device)
        if device == "cpu" and self.has_gpu():
            from keras.src.backend.torch.core import get_device

            if get_device() != "cpu":  # Keras puts tensors and weights on CUDA whenever it can
                raise BackendError("device=cpu on a machine with a GPU: Keras on torch would run on the GPU; "
                                   "set KERAS_TORCH_DEVICE=cpu to measure the CPU")

    def version(self) -> str:
        return self.torch.__version__

    def has_gpu(self) -> bool:
        return self.torch.cuda.is_available()

    def gpu_model(self) -> str:
        return self.torch.cuda.get_device_name(0) if self.has_gpu() else "none"

    def set_threads(self, intra_op: int, inter_op: int) -> dict:
        from nnenergy.measure.hardware import usable_cores

        torch = self.torch
        torch.set_num_threads(intra_op or usable_cores())
        try:
            torch.set_num_interop_threads(inter_op or usable_cores())
        except RuntimeError:  # settable once per process, before any parallel work (tests)
            pass
        return {"intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads(),
                "onednn_opts": f"mkldnn={torch.backends.mkldnn.is_available()}"}

    def compile_model(self, model, in_shape):
        return self.compile_fn(lambda x: model(x, training=False))

    def compile_fn(self, fn):
        torch = self.torch

        def run(*args):
            with torch.no_grad():
                return fn(*args)

        return run

    def sync(self):
        return self.torch.cuda.synchronize if self.device == "gpu" else None

    def no_op(self):
        x = self.random((1,))
        return lambda: x.clone()

    def profile(self, fn, layers, passes):
        from nnenergy.measure.incontext import profile_torch

        return profile_torch(fn, layers, passes, cuda=self.device == "gpu")


_BACKENDS = {"tensorflow": TensorFlowBackend, "torch": TorchBackend}


@lru_cache(maxsize=4)
def current(device: str = "cpu") -> Backend:
    """The backend Keras runs on in this process, for `device` (one instance per process)."""
    name = backend_name()
    if name not in _BACKENDS:
        raise BackendError(f"KERAS_BACKEND={name!r} cannot be measured yet; supported: {', '.join(SUPPORTED)}")
    import keras

    if keras.backend.backend() != name:  # keras.json and the environment disagree: trust Keras
        name = keras.backend.backend()
        if name not in _BACKENDS:
            raise BackendError(f"Keras runs on {name!r}, which cannot be measured yet; supported: "
                               f"{', '.join(SUPPORTED)}")
    return _BACKENDS[name](device)
