"""A resumable measurement sweep: whole models under the interleaved protocol, their layers in
context (profiler attribution), and in isolation for all or a sample of configurations."""

from __future__ import annotations

import json
import logging
import math
import random
import time
import zlib
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from nnenergy import dataset as ds
from nnenergy import describe as desc
from nnenergy import zoo as architectures  # the model zoo, shared with prediction
from nnenergy.describe import layer_row
from nnenergy.measure import backends, layers, remeasure
from nnenergy.measure.incontext import restore_untraced
from nnenergy.measure.meter import EnergyMeter, MeasurementError, MeterSettings
from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
from nnenergy.measure.provenance import hardware_provenance
from nnenergy.measure.store import JsonlStore
from nnenergy.schema import config_id, parse_config_id

log = logging.getLogger(__name__)

REFERENCE = ("reference_cnn", 64, 4)  # architecture, input size, batch: the speed witness
RETRIES_ON_RESUME = 3  # a measurement that failed is tried again on resume, this many times in all
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
    # Measure-twice checks (`measure.remeasure`): this share of configurations is measured again at least
    # `remeasure_after_min` later in the same session; the datasheet states their agreement.
    remeasure_share: float = 0.05
    remeasure_after_min: float = 20.0
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
        if not 0 <= self.remeasure_share <= 1:
            raise SweepInputError(f"sweep.remeasure_share must lie in [0, 1], got {self.remeasure_share}")
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
                architectures.check_name(name)
            except architectures.ArchitectureError as exc:
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

            bad = sorted(set(self.generated.kernel_focus) - set(KERNEL_KINDS))
            if bad:
                raise SweepInputError(f"sweep.generated.kernel_focus: unknown kernel kinds {bad}; "
                                      f"known: {', '.join(KERNEL_KINDS)}")
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
                or g.kernel_seeds[1] > g.kernel_seeds[0]):
            raise SweepInputError("the sweep has nothing to measure (no architectures, files or generated seeds)")


@dataclass
class SweepResult:
    output_dir: Path
    models: pd.DataFrame
    layers: pd.DataFrame
    skipped: list[dict]
    wall_time_s: float  # over all sessions of this sweep, resumed ones included
    provenance: dict
    complete: bool = True  # False when `max_minutes` stopped it early


def inference_call(model, input_shape: tuple[int, ...], batch: int, backend=None):
    """A no-argument callable running one compiled pass of `model` on a fixed random batch."""
    backend = backend or backends.current()
    fn = backend.compile_model(model, input_shape)
    x = backend.random((batch, *input_shape))
    return lambda: fn(x)


def reference_call(backend=None):
    """The protocol's reference model, built and compiled (rebuild it after `clear_session`)."""
    arch, size, batch = REFERENCE
    built = architectures.build(arch, size)
    return inference_call(built.model, built.input_shape, batch, backend)


def canonical_reference(path: Path, ref_series, profile: str, statistic: str = "round_min_median") -> dict:
    """The profile's canonical reference (`data/<profile>/reference.json`); the first measurement
    of a profile fixes it, so every later row of that CPU shares one scale. `statistic` is how the
    reference's windows were read (`ProtocolSettings.reference_statistic`): a probe reads them so too."""
    if path.exists():
        return json.loads(path.read_text())
    canonical = {"energy_j": ref_series.stat("energy_j", statistic),
                 "latency_s": ref_series.stat("latency_s", statistic),
                 "reference": list(REFERENCE), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "profile": profile, "statistic": statistic}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(canonical, indent=1))
    return canonical


def set_threads(threads: Threads, backend=None) -> dict:
    """Fix the framework's thread pools (before it runs anything) and return what to record."""
    return (backend or backends.current()).set_threads(threads.intra_op, threads.inter_op)


def _name(arch: str) -> str:
    """A file's architecture name is its stem."""
    return Path(arch).stem if arch.endswith((".keras", ".h5")) else arch


@dataclass
class Job:
    arch: str  # a name or a file
    size: int | None  # None: the model decides (files, generated)
    batches: list[int]


class Sweep:
    def __init__(self, spec: SweepSpec):
        self.spec = spec
        try:  # the framework is imported here, before CodeCarbon samples the CPU
            self.backend = backends.current(spec.device)
        except backends.BackendError as exc:
            raise SweepInputError(str(exc)) from None
        self.threads = set_threads(spec.threads, self.backend)
        self.meter = EnergyMeter(spec.country_iso_code, sync=self.backend.sync(), require_gpu=spec.device == "gpu")
        self.prov = hardware_provenance(self.meter.tracker, self.backend) | self.threads
        hw = self.prov["hardware_id"]
        self.out = Path(spec.output_dir)
        self._check_writable()
        progress = self.out / "progress"
        self.config_store = JsonlStore(progress / "models.jsonl", key="config_id")
        self.layer_rows = JsonlStore(progress / "layers.jsonl", key="row_id")
        self.skip_store = JsonlStore(progress / "skipped.jsonl", key="config_id")
        self.sessions = JsonlStore(progress / "sessions.jsonl", key="session")
        self.blocks = JsonlStore(progress / "reference.jsonl", key="block")
        self.remeasured = JsonlStore(progress / "remeasure.jsonl", key="config_id")
        self.signatures = JsonlStore(Path(spec.cache_dir) / hw / "signatures.jsonl", key="signature")
        self._import_shipped()
        self._check_profile()

    # -- guards -----------------------------------------------------------------------
    def _check_writable(self) -> None:
        try:
            (self.out / "progress").mkdir(parents=True, exist_ok=True)
            probe = self.out / "progress" / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise SweepInputError(f"cannot write to sweep.output_dir {self.out}: {exc.strerror}") from None

    def _import_shipped(self) -> None:
        """A shipped dataset has Parquet files but no progress (it is not committed): seed the
        progress stores from it, so a sweep resumed on another day appends instead of overwriting."""
        if len(self.config_store) or not (self.out / ds.MODELS_FILE).exists():
            return
        data = ds.load(self.out)
        for rec in data.layers.to_dict("records"):
            self.layer_rows.append(rec, flush=False)
        for rec in data.models.to_dict("records"):
            self.config_store.append(rec, flush=False)
        self.layer_rows.sync()
        self.config_store.sync()
        # Skips and past sessions travel with the dataset too (progress/ is not committed).
        for name, store in (("skipped.json", self.skip_store), ("sessions.json", self.sessions),
                            ("blocks.json", self.blocks), (remeasure.REMEASURE_FILE, self.remeasured)):
            if (self.out / name).exists():
                for rec in json.loads((self.out / name).read_text()):
                    store.append(rec, flush=False)
                store.sync()
        log.info("resuming %s from its %d shipped configurations", self.out, len(data.models))

    def _check_profile(self) -> None:
        mine = self.prov["profile"]
        # Rows older than profiles carry only a hardware id: `<profile>-<hash>`.
        theirs = {r.get("profile") or str(r.get("hardware_id", "")).rsplit("-", 1)[0]
                  for r in self.config_store.values()} - {mine}
        if theirs:
            raise SweepInputError(
                f"{self.out} holds measurements of hardware profile {sorted(map(str, theirs))}, but this machine is "
                f"{mine}; rows of two CPUs never share a dataset: measure into data/{mine}/ instead")

    # -- isolated layers ----------------------------------------------------------------
    def call_overhead(self) -> dict:
        """Cost of calling a compiled no-op: the floor under every isolated layer."""
        key = "call_overhead"
        if key not in self.signatures:
            m = self.meter.measure(self.backend.no_op(), self.spec.layer)
            self.signatures.append({"signature": key, **m.as_row("iso_")})
        return self.signatures[key]

    def _isolated(self, layer, info: desc.LayerInfo, batch: int) -> dict:
        sig = info.signature(batch, self.prov["hardware_id"])
        if sig not in self.signatures or self.signatures[sig].get("iso_error"):
            rec = {"signature": sig, "type": info.type}
            try:
                fn = layers.isolated_callable(layer, info, batch, self.backend)
                rec.update(self.meter.measure(fn, self.spec.layer).as_row("iso_"))
            except Exception as exc:  # one unmeasurable layer must not stop a sweep
                rec["iso_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                log.warning("isolating %s (%s) failed: %s", info.name, info.type, rec["iso_error"])
            self.signatures.append(rec)
        return self.signatures[sig]

    def _isolate(self, cid: str) -> bool:
        """Whether this configuration's layers are measured in isolation (a stable sample)."""
        share = self.spec.isolate_share
        return share >= 1.0 or (share > 0 and random.Random(f"{self.spec.seed}|{cid}").random() < share)

    # -- rows --------------------------------------------------------------------------
    def _rows(self, built, infos, leaves: dict, batch: int, whole, prof, overhead: dict, block: str) -> None:
        spec = self.spec
        cid = config_id(built.name, built.input_size, batch)
        op_total = prof.total_op_time_s
        spec_json = built.spec.to_json() if built.spec is not None else None
        base = {
            "config_id": cid,
            "architecture": built.name,
            "family": built.family,
            "source": built.source,
            "input_size": built.input_size,
            "batch_size": batch,
            "generator_seed": float(built.spec.seed) if built.source == "generated" else None,
            **self.prov,
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        rows, sums = [], {"flops": 0.0, "params": 0.0, "mem_bytes": 0.0, "iso_e": 0.0, "iso_t": 0.0}
        isolate = self._isolate(cid)
        iso_ok = isolate
        for info in infos:
            iso = self._isolated(leaves[info.name], info, batch) if isolate else {}
            row = layer_row(info, batch, cid)  # description + analytic cost, as predict builds it
            ctx_t = prof.op_time_s.get(info.name, 0.0)
            share = ctx_t / op_total if op_total > 0 else math.nan
            iso_e = iso.get("iso_energy_j")
            iso_ok &= iso_e is not None
            sums["iso_e"] += iso_e or 0.0
            sums["iso_t"] += iso.get("iso_latency_s") or 0.0
            for k in ("flops", "params", "mem_bytes"):
                sums[k] += row[k]
            rows.append({
                **base,
                **row,
                "row_id": f"{cid}|{info.index}",
                "signature": info.signature(batch, self.prov["hardware_id"]),
                **{k: iso.get(k) for k in ("iso_energy_j", "iso_latency_s", "iso_power_w", "iso_spread",
                                           "iso_passes", "iso_windows", "iso_error")},
                "iso_window_energies_j": json.dumps(iso.get("iso_window_energies_j") or []),
                "ctx_op_time_s": ctx_t,
                "ctx_share": share,
                "ctx_energy_j": whole.energy_j * share,
                "ctx_latency_s": whole.latency_s * share,
            })
        n = len(infos)
        oh_t, oh_e = overhead["iso_latency_s"], overhead["iso_energy_j"]
        w = whole.as_row()
        model_row = {
            **base,
            "n_layers": n,
            "n_signatures": len({r["signature"] for r in rows}),
            "flops": sums["flops"],
            "params": sums["params"],
            "mem_bytes": sums["mem_bytes"],
            **{k: v for k, v in w.items() if k != "window_energies_j"},
            "window_energies_j": json.dumps(w["window_energies_j"]),
            "protocol": json.dumps(spec.protocol.__dict__),
            "block": block,
            "arch_spec": spec_json,
            "iso_sum_energy_j": sums["iso_e"] if iso_ok else None,
            "iso_sum_latency_s": sums["iso_t"] if iso_ok else None,
            "call_overhead_s": oh_t,
            "call_overhead_j": oh_e,
            # Isolated layers are raw readings: compare them with the raw whole model.
            "additivity": whole.energy_raw_j / sums["iso_e"] if iso_ok and sums["iso_e"] > 0 else None,
            "additivity_latency": whole.latency_raw_s / sums["iso_t"] if iso_ok and sums["iso_t"] > 0 else None,
            "additivity_overhead_corrected": (
                whole.energy_raw_j / (sums["iso_e"] - n * oh_e) if iso_ok and sums["iso_e"] > n * oh_e else None
            ),
            "ctx_op_time_s": op_total,
            "ctx_unattributed_s": prof.unattributed_s,
            "wall_over_op_time": whole.latency_raw_s / op_total if op_total > 0 else None,
        }
        for r in rows:
            self.layer_rows.append(r, flush=False)
        self.layer_rows.sync()
        # The model row goes last: its presence marks the configuration complete.
        self.config_store.append(model_row)

    # -- jobs --------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        if getattr(self, "_jobs", None) is None:
            self._jobs = self._make_jobs()
        return self._jobs

    def _make_jobs(self) -> list[Job]:
        spec = self.spec
        jobs: list[Job] = []
        grid = [(s, b) for s in spec.input_sizes for b in spec.batch_sizes]
        for arch in spec.architectures:
            if spec.configs_per_architecture:
                rng = random.Random(f"{spec.seed}|{arch}")
                picked = rng.sample(grid, min(spec.configs_per_architecture, len(grid)))
                for s in sorted({s for s, _ in picked}):
                    jobs.append(Job(arch, s, sorted(b for s2, b in picked if s2 == s)))
            else:
                jobs += [Job(arch, s, list(spec.batch_sizes)) for s in spec.input_sizes]
        jobs += [Job(f, None, list(spec.batch_sizes)) for f in spec.model_files]
        jobs += self._generated_jobs()
        if spec.shuffle:
            random.Random(spec.seed).shuffle(jobs)
        return jobs

    def _generated_jobs(self) -> list[Job]:
        g = self.spec.generated
        names = []
        if g.seeds[1] > g.seeds[0] or g.variant_families:
            from nnenergy import arch

            names = [arch.generated_name(s) for s in range(*g.seeds)
                     if not g.focus_kinds or arch.macro_kind(s) in g.focus_kinds]
            names += [arch.variant_name(f, s) for s in range(*g.variant_seeds) for f in g.variant_families]
            # A fixed shuffle: a sweep stopped part-way holds both kinds in proportion.
            random.Random(self.spec.seed).shuffle(names)
        out = []
        if names:
            import numpy as np

            from nnenergy import arch
        for name in names:
            # Batch sizes whose estimated pass lies within ~1 ms-1 s, spread over the range.
            rng = np.random.default_rng([self.spec.seed, zlib.crc32(name.encode())])
            spec = arch.spec_from_name(name)
            batches = sorted(set(arch.sample_configs(spec, rng, g.configs_per_architecture, g.batch_sizes)))
            out.append(Job(name, None, batches))
        return out + self._kernel_jobs()

    def _kernel_jobs(self) -> list[Job]:
        g = self.spec.generated
        if g.kernel_seeds[1] <= g.kernel_seeds[0]:
            return []
        import numpy as np

        from nnenergy.arch import kernels

        out = []
        for seed in range(*g.kernel_seeds):
            if g.kernel_focus and kernels.kernel_kind(seed) not in g.kernel_focus:
                continue
            name = kernels.kernel_name(seed)
            rng = np.random.default_rng([self.spec.seed, zlib.crc32(name.encode())])
            spec = kernels.sample_kernel_spec(seed)
            out.append(Job(name, None, kernels.sample_batches(spec, rng, g.configs_per_architecture, g.batch_sizes)))
        return out

    def _retryable(self) -> set[str]:
        return {r["config_id"] for r in self.skip_store.values()
                if r.get("retryable") and r.get("attempts", 1) < RETRIES_ON_RESUME}

    # -- driver ------------------------------------------------------------------------
    def run(self) -> SweepResult:
        import keras

        spec = self.spec
        started = time.perf_counter()
        session = datetime.now(timezone.utc).isoformat()
        overhead = self.call_overhead()
        jobs = self.jobs()
        total = sum(len(j.batches) for j in jobs)
        retry = self._retryable()
        # Measured stays done even where an older failure of it is on record.
        done = {r["config_id"] for r in self.config_store.values()} | (
            {r["config_id"] for r in self.skip_store.values()} - retry)
        # Files and generated models decide their own input size: match them by (name, batch).
        done_pairs = {(arch, batch) for arch, _, batch in map(parse_config_id, done)}
        pending = []
        for j in jobs:
            name = _name(j.arch)
            left = [b for b in j.batches
                    if ((name, b) not in done_pairs if j.size is None else config_id(name, j.size, b) not in done)]
            if left:
                pending.append(Job(j.arch, j.size, left))
        bar = tqdm(total=total, initial=total - sum(len(j.batches) for j in pending), unit="config",
                   desc=f"sweep {spec.name}", dynamic_ncols=True)
        ref = reference_call(self.backend)
        complete = True
        try:
            for b0 in range(0, len(pending), spec.block_architectures):
                # At least one block: a budget smaller than the start-up still measures something.
                if b0 and spec.max_minutes is not None and time.perf_counter() - started > spec.max_minutes * 60:
                    complete = False
                    log.info("sweep %s: max_minutes reached, stopping (rerun to resume)", spec.name)
                    break
                self._block(pending[b0:b0 + spec.block_architectures], ref, overhead, bar)
                self._remeasure(session, ref)
                keras.backend.clear_session()  # free the graphs before the next block
                ref = reference_call(self.backend)
        finally:
            bar.close()
            self.sessions.append({"session": session, "wall_time_s": time.perf_counter() - started,
                                  "profile": self.prov["profile"]})
        result = self.finish()
        result.complete = complete
        return result

    def _canonical_file(self) -> Path:
        """One canonical reference per profile and way of reading the reference: every dataset of this CPU
        measured by one protocol shares its scale. The profile's first protocol owns `reference.json`; a
        protocol reading the reference another way (issue 30's) gets `reference-<statistic>.json`."""
        base = self.out.parent / "reference.json"
        how = self.spec.protocol.reference_statistic
        if base.exists() and json.loads(base.read_text()).get("statistic", "round_min_median") != how:
            return self.out.parent / f"reference-{how}.json"
        return base

    def _block(self, jobs: list[Job], ref, overhead: dict, bar) -> None:
        spec, backend = self.spec, self.backend
        sync = backend.sync() or (lambda: None)  # a GPU pass has only been queued when its call returns
        block_id = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        tasks, meta = {}, {}
        for job in jobs:
            name = _name(job.arch)
            try:
                built = architectures.build(job.arch, job.size)
                infos = desc.describe(built.model)
                leaves = desc.leaf_layers(built.model)  # nested models flattened, as `describe` names them
                fn = backend.compile_model(built.model, built.input_shape)
            except architectures.ArchitectureError as exc:
                self._skip(name, job.size or 0, job.batches, str(exc), bar)
                continue
            except Exception as exc:  # a generated model TF cannot run: record it, keep going
                self._skip(name, job.size or 0, job.batches, f"{type(exc).__name__}: {exc}", bar)
                continue
            for batch in job.batches:
                cid = config_id(built.name, built.input_size, batch)
                x = backend.random((batch, *built.input_shape))
                call = (lambda f, t: (lambda: f(t)))(fn, x)
                try:
                    call()  # trace + first pass
                    sync()
                    t0 = time.perf_counter()
                    call()
                    sync()
                    one = time.perf_counter() - t0
                except backend.errors as exc:
                    self._skip(built.name, built.input_size, [batch], f"{type(exc).__name__}: {exc}", bar,
                               retryable=True)
                    continue
                if one > spec.max_seconds_per_pass * 1.5:
                    self._skip(built.name, built.input_size, [batch],
                               f"too slow for this sweep: {one:.2f} s per pass > {spec.max_seconds_per_pass} s", bar)
                    continue
                tasks[cid] = call
                meta[cid] = (built, infos, leaves, batch)
        if not tasks:
            return
        canonical_path = self._canonical_file()
        canonical = json.loads(canonical_path.read_text()) if canonical_path.exists() else None
        measurer = InterleavedMeasurer(self.meter, spec.protocol, ref, canonical, seed=hash(block_id) & 0xFFFF)
        try:
            results, ref_series = measurer.run(tasks)
        except MeasurementError as exc:
            for cid, (built, _, _, batch) in meta.items():
                self._skip(built.name, built.input_size, [batch], f"MeasurementError: {exc}", bar, retryable=True)
            return
        canonical = canonical or canonical_reference(canonical_path, ref_series, self.prov["profile"],
                                                     spec.protocol.reference_statistic)
        self.blocks.append({
            "block": block_id, "configs": len(tasks), "contended_windows": measurer.contended_total,
            "reference_energy_j": ref_series.per_round("energy_j", "min"),
            "reference_latency_s": ref_series.per_round("latency_s", "min"),
            "speed_index": [v / canonical["energy_j"] for v in ref_series.per_round("energy_j", "min")],
        })
        for cid, exc in measurer.failed.items():
            built, _, _, batch = meta[cid]
            self._skip(built.name, built.input_size, [batch], f"MeasurementError: {exc}", bar, retryable=True)
        for cid, res in results.items():
            built, infos, leaves, batch = meta[cid]
            try:
                prof = backend.profile(tasks[cid], leaves, spec.profile_passes)
                self._rows(built, infos, leaves, batch, res, prof, overhead, block_id)
            except (MeasurementError, *backend.errors) as exc:
                self._skip(built.name, built.input_size, [batch], f"{type(exc).__name__}: {exc}", bar,
                           retryable=True, advance=False)
            bar.update(1)
            bar.set_postfix(last=f"{built.name} {built.input_size}px b{batch}", speed=f"{res.speed_index:.2f}")

    def _remeasure(self, session: str, ref) -> None:
        """Measure-twice: this session's selected configurations, once they are old enough, measured
        again whole (same protocol, same canonical reference); each pair is stored as soon as it is read."""
        spec = self.spec
        done = {r["config_id"] for r in self.remeasured.values()}
        due = remeasure.due(self.config_store.values(), done, spec.remeasure_share, spec.remeasure_after_min,
                            session, datetime.now(timezone.utc), spec.seed)
        if not due:
            return
        due = due[: spec.block_architectures * 2]
        tasks, rows = {}, {}
        for r in due:
            try:
                if r.get("source") == "file":
                    raise ValueError("a model file is not re-measured (its path is not in the row)")
                built = architectures.build(r["architecture"], int(r["input_size"])
                                            if r.get("source") in ("keras.applications", "builtin") else None)
                fn = self.backend.compile_model(built.model, built.input_shape)
                x = self.backend.random((int(r["batch_size"]), *built.input_shape))
                tasks[r["config_id"]] = (lambda f, t: (lambda: f(t)))(fn, x)
                rows[r["config_id"]] = r
            except Exception as exc:  # rebuilt differently (or not at all): record, never retry
                self.remeasured.append({"config_id": r["config_id"], "error": f"{type(exc).__name__}: {exc}"[:300]})
        if not tasks:
            return
        canonical = json.loads(self._canonical_file().read_text())
        measurer = InterleavedMeasurer(self.meter, spec.protocol, ref, canonical, seed=len(self.remeasured))
        try:
            results, _ = measurer.run(tasks)
        except MeasurementError:
            return
        now = datetime.now(timezone.utc)
        for cid, res in results.items():
            first = rows[cid]
            self.remeasured.append({
                "config_id": cid, "first_energy_j": first["energy_j"], "second_energy_j": res.energy_j,
                "first_latency_s": first["latency_s"], "second_latency_s": res.latency_s,
                "first_block": first["block"], "second_at": now.isoformat(timespec="seconds"),
                "minutes_apart": (now - datetime.fromisoformat(first["block"])).total_seconds() / 60})

    def _skip(self, name, size, batches, reason, bar, advance=True, retryable=False) -> None:
        log.warning("skipping %s at %spx: %s", name, size, reason)
        for b in batches:
            cid = config_id(name, size or 0, b)
            attempts = self.skip_store[cid].get("attempts", 0) + 1 if cid in self.skip_store else 1
            self.skip_store.append({"config_id": cid, "architecture": name, "input_size": size, "batch_size": b,
                                    "reason": str(reason)[:500], "retryable": retryable, "attempts": attempts})
        if advance:
            bar.update(len(batches))

    def _keep_backfilled_edges(self, layer_df: pd.DataFrame) -> pd.DataFrame:
        """Rows measured before `describe` recorded the graph's edges get them from the shipped
        table when `scripts/backfill_graph.py` added them there (progress/ keeps the old rows)."""
        path = self.out / ds.LAYERS_FILE
        if not path.exists():
            return layer_df
        import pyarrow.parquet as pq

        if "inbound_layers" not in pq.read_schema(path).names:
            return layer_df
        shipped = pd.read_parquet(path, columns=["row_id", "inbound_layers"]).dropna()
        edges = shipped.set_index("row_id")["inbound_layers"]
        current = layer_df["inbound_layers"] if "inbound_layers" in layer_df else pd.Series(None, index=layer_df.index)
        filled = current.where(current.notna(), layer_df["row_id"].map(edges))
        return layer_df.assign(inbound_layers=filled)

    def finish(self) -> SweepResult:
        models = pd.DataFrame(self.config_store.values())
        layer_df = pd.DataFrame(self.layer_rows.values())
        measured = set(models["config_id"]) if len(models) else set()
        if not models.empty:
            layer_df = layer_df[layer_df["config_id"].isin(measured)]  # drop half-done configs
            layer_df = self._keep_backfilled_edges(layer_df)
            layer_df, models = restore_untraced(layer_df, models)  # grouped convolutions' untraced time
            models = models.sort_values(["architecture", "input_size", "batch_size"]).reset_index(drop=True)
            layer_df = layer_df.sort_values(["architecture", "input_size", "batch_size", "layer_index"])
            ds.save(models, layer_df.reset_index(drop=True), self.out)
        # Every skip of this dataset (several specs may feed one: space, then adaptive rounds), but not
        # those measured since (a retried failure that worked).
        skipped = [r for r in self.skip_store.values() if r["config_id"] not in measured]
        (self.out / "skipped.json").write_text(json.dumps(skipped, indent=1))
        (self.out / "sessions.json").write_text(json.dumps(self.sessions.values(), indent=1))
        (self.out / "blocks.json").write_text(json.dumps(self.blocks.values()))
        (self.out / remeasure.REMEASURE_FILE).write_text(json.dumps(self.remeasured.values(), indent=1))
        if self._canonical_file().exists():  # the scale its labels are on, beside them (predictors store it)
            (self.out / "canonical.json").write_text(self._canonical_file().read_text())
        wall = sum(r["wall_time_s"] for r in self.sessions.values())
        if not models.empty:
            from nnenergy.measure.datasheet import write

            write(self.out, self.spec.name, wall, skipped)
        return SweepResult(self.out, models, layer_df, skipped, wall, self.prov)
