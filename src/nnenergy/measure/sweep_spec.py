"""What a sweep measures, as its config says it: `SweepSpec` (the `sweep` group of conf/), checked
before anything is measured, and the reference model every block is measured against."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from nnenergy import zoo
from nnenergy.measure import backends
from nnenergy.measure.meter import MeterSettings
from nnenergy.measure.protocol import ProtocolSettings

REFERENCE = ("reference_cnn", 64, 4)  # architecture, input size, batch: the speed witness
NVML_MIN_WINDOW_S = 0.5  # GPU windows: several of NVML's ~100 ms energy-counter updates


class SweepInputError(ValueError):
    """A sweep config that cannot be measured as given; the message is one line for the user."""


@dataclass(frozen=True)
class Threads:
    """The framework's thread pools, fixed so that every row of a profile ran the same way."""

    intra_op: int = 0  # 0 = one per usable core
    inter_op: int = 1  # 1 = parallel branches run one after another: no overlap to predict


@dataclass(frozen=True)
class Generated:
    """Generated architectures (`nnenergy.arch`) added to the sweep."""

    seeds: tuple[int, int] = (0, 0)  # [start, stop) of generator seeds
    variant_seeds: tuple[int, int] = (0, 0)  # per keras.applications family
    variant_families: tuple[str, ...] = ()
    configs_per_architecture: int = 3  # batch sizes per architecture (its input size is its own)
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    # Adaptive resampling: only the seeds of these macro kinds (the kind cycles with the seed), chosen
    # where the predictor's held-out error is largest (`benchmarks/adaptive.py` says which).
    focus_kinds: tuple[str, ...] = ()
    # Single kernels (`nnenergy.arch.kernels`): [start, stop) of kernel seeds, and their batch sizes per kernel.
    kernel_seeds: tuple[int, int] = (0, 0)
    kernel_focus: tuple[str, ...] = ()  # only the seeds of these kernel kinds (adaptive rounds)
    # Sequence kernels (`nnenergy.arch.seqkernels`, `seq1_` names): [start, stop) of their seeds.
    seq_kernel_seeds: tuple[int, int] = (0, 0)


@dataclass
class SweepSpec:
    name: str
    architectures: list[str]
    batch_sizes: list[int]
    input_sizes: list[int]
    output_dir: str
    cache_dir: str
    country_iso_code: str = "USA"
    model_files: list[str] = field(default_factory=list)
    isolate_share: float = 1.0  # share of configurations whose layers are also measured in isolation
    profile_passes: int = 2
    layer: MeterSettings = field(default_factory=MeterSettings)  # min_seconds: meter.LAYER_MIN_SECONDS
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    threads: Threads = field(default_factory=Threads)
    generated: Generated = field(default_factory=Generated)
    configs_per_architecture: int | None = None  # sample this many (size, batch) per name; None = grid
    max_seconds_per_pass: float = 1.0  # slower configurations are skipped (recorded, not retried)
    block_architectures: int = 4  # architectures measured together in interleaved rounds
    max_minutes: float | None = None  # stop after the block that crosses this, or the first (resume later)
    # Begin no configuration after this; the visits of those begun are made until `max_minutes` (with
    # `protocol.visits > 1`: a run that ends with every label complete). None: until `max_minutes`.
    begin_minutes: float | None = None
    # Measure-twice checks (`measure.remeasure`): this share of configurations is measured again at least
    # `remeasure_after_min` later in the same session; the datasheet states their agreement.
    remeasure_share: float = 0.05
    remeasure_after_min: float = 20.0
    # With `protocol.visits > 1`: MB of weights kept built and compiled between a configuration's visits
    # in one run (`measure.model_cache`); 0 builds each visit afresh (datasets before 2026-12-06 evening).
    keep_models_mb: float = 3072
    shuffle: bool = False
    seed: int = 0
    device: str = "cpu"  # cpu | gpu (NVML energy; the Keras backend comes from KERAS_BACKEND)

    @classmethod
    def from_config(cls, cfg: dict) -> "SweepSpec":
        cfg = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise SweepInputError(f"unknown sweep key(s) {unknown}; known: {sorted(known)}")
        for key, klass in (("layer", MeterSettings), ("protocol", ProtocolSettings),
                           ("threads", Threads), ("generated", Generated)):
            sub = dict(cfg.get(key) or {})
            bad = sorted(set(sub) - {f.name for f in fields(klass)})
            if bad:
                raise SweepInputError(f"unknown key(s) {bad} in sweep.{key}")
            for k, v in sub.items():
                if isinstance(v, list):
                    sub[k] = tuple(v)
            try:
                cfg[key] = klass(**sub)
            except (TypeError, ValueError) as exc:
                raise SweepInputError(f"sweep.{key}: {exc}") from None
        cfg["model_files"] = list(cfg.get("model_files") or [])
        missing = sorted(f.name for f in fields(cls) if f.name not in cfg
                         and f.default is MISSING and f.default_factory is MISSING)
        if missing:
            raise SweepInputError(f"the sweep config lacks required key(s) {missing}")
        spec = cls(**cfg)
        spec.validate()
        return spec

    def validate(self) -> None:
        """Refuse what cannot be measured before anything is: one line, nothing written."""
        for key in ("max_minutes", "begin_minutes"):
            if getattr(self, key) is not None and not getattr(self, key) >= 0:
                raise SweepInputError(f"sweep.{key} must be >= 0 (or null), got {getattr(self, key)}")
        if not 0 <= self.remeasure_share <= 1:
            raise SweepInputError(f"sweep.remeasure_share must lie in [0, 1], got {self.remeasure_share}")
        if not self.keep_models_mb >= 0:
            raise SweepInputError(f"sweep.keep_models_mb must be >= 0, got {self.keep_models_mb}")
        if not self.remeasure_after_min >= 0:
            raise SweepInputError(f"sweep.remeasure_after_min must be >= 0, got {self.remeasure_after_min}")
        for what, values in (("batch_sizes", self.batch_sizes), ("input_sizes", self.input_sizes)):
            bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v <= 0]
            if bad:
                raise SweepInputError(f"sweep.{what} must be positive integers, got {bad}")
        if (self.architectures or self.model_files) and not self.batch_sizes:
            raise SweepInputError("sweep.batch_sizes is empty")
        if self.architectures and not self.input_sizes:
            raise SweepInputError("sweep.input_sizes is empty but sweep.architectures is not")
        for name in [*self.architectures, *self.model_files]:
            try:
                zoo.check_name(name)
            except zoo.ArchitectureError as exc:
                raise SweepInputError(str(exc)) from None
        if self.generated.variant_families:
            from nnenergy import arch

            bad = sorted(set(self.generated.variant_families) - set(arch.VARIANT_FAMILIES))
            if bad:
                raise SweepInputError(f"sweep.generated.variant_families: no variants of {bad}; "
                                      f"known: {', '.join(arch.VARIANT_FAMILIES)}")
        if self.generated.focus_kinds:
            from nnenergy import arch

            bad = sorted(set(self.generated.focus_kinds) - set(arch.MACRO_KINDS))
            if bad:
                raise SweepInputError(f"sweep.generated.focus_kinds: unknown macro kinds {bad}; "
                                      f"known: {', '.join(arch.MACRO_KINDS)}")
        if self.generated.kernel_focus:
            from nnenergy.arch.kernels import KERNEL_KINDS
            from nnenergy.arch.seqkernels import SEQ_KERNEL_KINDS

            bad = sorted(set(self.generated.kernel_focus) - set(KERNEL_KINDS) - set(SEQ_KERNEL_KINDS))
            if bad:
                raise SweepInputError(f"sweep.generated.kernel_focus: unknown kernel kinds {bad}; "
                                      f"known: {', '.join(KERNEL_KINDS + SEQ_KERNEL_KINDS)}")
        if self.device not in backends.DEVICES:
            raise SweepInputError(f"sweep.device must be one of {backends.DEVICES}, not {self.device!r}")
        if self.device == "gpu":
            short = {k: v for k, v in (("protocol.min_seconds", self.protocol.min_seconds),
                                       ("layer.min_seconds", self.layer.min_seconds)) if v < NVML_MIN_WINDOW_S}
            if short:
                raise SweepInputError(f"device=gpu: NVML's energy counter updates about every 100 ms, so windows "
                                      f"need >= {NVML_MIN_WINDOW_S} s; got {short}")
        if not 0.0 <= self.isolate_share <= 1.0:
            raise SweepInputError("sweep.isolate_share must be within [0, 1]")
        g = self.generated
        if not (self.architectures or self.model_files or g.seeds[1] > g.seeds[0] or g.variant_families
                or g.kernel_seeds[1] > g.kernel_seeds[0] or g.seq_kernel_seeds[1] > g.seq_kernel_seeds[0]):
            raise SweepInputError("the sweep has nothing to measure (no architectures, files or generated seeds)")
