"""A resumable measurement sweep: whole models under the interleaved protocol, their layers in
context (profiler attribution), and in isolation for all or a sample of configurations.

This module runs the block loop; the rest is one module per job: `sweep_spec` (the config, checked),
`plan` (the jobs, and what earlier sessions left of them), `rows` (the rows of a measured
configuration), `progress` (resume and storage)."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from nnenergy import describe as desc
from nnenergy import zoo
from nnenergy.measure import backends, layers, remeasure, rows
from nnenergy.measure.meter import EnergyMeter, MeasurementError
from nnenergy.measure.plan import Job, arch_name, isolated, pending_jobs, plan_jobs
from nnenergy.measure.progress import Progress, SweepResult, canonical_reference
from nnenergy.measure.protocol import InterleavedMeasurer
from nnenergy.measure.provenance import hardware_provenance
from nnenergy.measure.store import JsonlStore
from nnenergy.measure.sweep_spec import REFERENCE, SweepInputError, SweepSpec, Threads
from nnenergy.schema import config_id

log = logging.getLogger(__name__)


def inference_call(model, input_shape: tuple[int, ...], batch: int, backend=None):
    """A no-argument callable running one compiled pass of `model` on a fixed random batch."""
    backend = backend or backends.current()
    fn = backend.compile_model(model, input_shape)
    x = backend.random((batch, *input_shape))
    return lambda: fn(x)


def reference_call(backend=None):
    """The protocol's reference model, built and compiled (rebuild it after `clear_session`)."""
    arch, size, batch = REFERENCE
    built = zoo.build(arch, size)
    return inference_call(built.model, built.input_shape, batch, backend)


def set_threads(threads: Threads, backend=None) -> dict:
    """Fix the framework's thread pools (before it runs anything) and return what to record."""
    return (backend or backends.current()).set_threads(threads.intra_op, threads.inter_op)


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
        self.out = Path(spec.output_dir)
        self.progress = Progress(self.out)
        self.signatures = JsonlStore(Path(spec.cache_dir) / self.prov["hardware_id"] / "signatures.jsonl",
                                     key="signature")
        self.progress.check_profile(self.prov["profile"])

    @property
    def config_store(self):
        """The measured configurations (`calibrate.bringup` counts them before a run)."""
        return self.progress.config_store

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

    # -- driver ------------------------------------------------------------------------
    def run(self) -> SweepResult:
        import keras

        spec = self.spec
        started = time.perf_counter()
        session = datetime.now(timezone.utc).isoformat()
        overhead = self.call_overhead()
        jobs = plan_jobs(spec)
        total = sum(len(j.batches) for j in jobs)
        pending = pending_jobs(jobs, self.progress.done())
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
            self.progress.sessions.append({"session": session, "wall_time_s": time.perf_counter() - started,
                                           "profile": self.prov["profile"]})
        result = self.progress.finish(spec.name, self.prov, spec.protocol.reference_statistic)
        result.complete = complete
        return result

    def _block(self, jobs: list[Job], ref, overhead: dict, bar) -> None:
        spec, backend = self.spec, self.backend
        sync = backend.sync() or (lambda: None)  # a GPU pass has only been queued when its call returns
        block_id = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        tasks, meta = {}, {}
        for job in jobs:
            name = arch_name(job.arch)
            try:
                built = zoo.build(job.arch, job.size)
                infos = desc.describe(built.model)
                leaves = desc.leaf_layers(built.model)  # nested models flattened, as `describe` names them
                fn = backend.compile_model(built.model, built.input_shape)
            except zoo.ArchitectureError as exc:
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
        canonical_path = self.progress.canonical_file(spec.protocol.reference_statistic)
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
        self.progress.blocks.append({
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
                self._record(built, infos, leaves, batch, res, prof, overhead, block_id)
            except (MeasurementError, *backend.errors) as exc:
                self._skip(built.name, built.input_size, [batch], f"{type(exc).__name__}: {exc}", bar,
                           retryable=True, advance=False)
            bar.update(1)
            bar.set_postfix(last=f"{built.name} {built.input_size}px b{batch}", speed=f"{res.speed_index:.2f}")

    def _remeasure(self, session: str, ref) -> None:
        """Measure-twice: this session's selected configurations, once they are old enough, measured
        again whole (same protocol, same canonical reference); each pair is stored as soon as it is read."""
        spec, stored = self.spec, self.progress.remeasured
        done = {r["config_id"] for r in stored.values()}
        due = remeasure.due(self.progress.config_store.values(), done, spec.remeasure_share, spec.remeasure_after_min,
                            session, datetime.now(timezone.utc), spec.seed)
        if not due:
            return
        due = due[: spec.block_architectures * 2]
        tasks, rows_of = {}, {}
        for r in due:
            try:
                if r.get("source") == "file":
                    raise ValueError("a model file is not re-measured (its path is not in the row)")
                built = zoo.build(r["architecture"], int(r["input_size"])
                                  if r.get("source") in ("keras.applications", "builtin") else None)
                fn = self.backend.compile_model(built.model, built.input_shape)
                x = self.backend.random((int(r["batch_size"]), *built.input_shape))
                tasks[r["config_id"]] = (lambda f, t: (lambda: f(t)))(fn, x)
                rows_of[r["config_id"]] = r
            except Exception as exc:  # rebuilt differently (or not at all): record, never retry
                stored.append({"config_id": r["config_id"], "error": f"{type(exc).__name__}: {exc}"[:300]})
        if not tasks:
            return
        canonical = json.loads(self.progress.canonical_file(spec.protocol.reference_statistic).read_text())
        measurer = InterleavedMeasurer(self.meter, spec.protocol, ref, canonical, seed=len(stored))
        try:
            results, _ = measurer.run(tasks)
        except MeasurementError:
            return
        now = datetime.now(timezone.utc)
        for cid, res in results.items():
            first = rows_of[cid]
            stored.append({
                "config_id": cid, "first_energy_j": first["energy_j"], "second_energy_j": res.energy_j,
                "first_latency_s": first["latency_s"], "second_latency_s": res.latency_s,
                "first_block": first["block"], "second_at": now.isoformat(timespec="seconds"),
                "minutes_apart": (now - datetime.fromisoformat(first["block"])).total_seconds() / 60})

    def _record(self, built, infos, leaves: dict, batch: int, whole, prof, overhead: dict, block: str) -> None:
        """The configuration's rows, its layers isolated first where it is sampled for that."""
        base = rows.base_row(built, batch, self.prov)
        isolate = isolated(self.spec, base["config_id"])
        isos = [self._isolated(leaves[info.name], info, batch) if isolate else {} for info in infos]
        layer_rows = rows.layer_rows(base, infos, isos, batch, whole, prof)
        context = {"protocol": json.dumps(self.spec.protocol.__dict__), "block": block,
                   "arch_spec": built.spec.to_json() if built.spec is not None else None}
        self.progress.add_config(layer_rows, rows.model_row(base, layer_rows, isolate, whole, prof, overhead, context))

    def _skip(self, name, size, batches, reason, bar, advance=True, retryable=False) -> None:
        log.warning("skipping %s at %spx: %s", name, size, reason)
        self.progress.skip(name, size, batches, reason, retryable)
        if advance:
            bar.update(len(batches))
