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
from nnenergy.measure.hardware import boot_id, booted_at
from nnenergy.measure.meter import EnergyMeter, MeasurementError
from nnenergy.measure.model_cache import ModelCache
from nnenergy.measure.plan import Job, arch_name, isolated, pending_jobs, plan_jobs
from nnenergy.measure.progress import Progress, SweepResult, canonical_reference
from nnenergy.measure.protocol import InterleavedMeasurer, combine_visits
from nnenergy.measure.provenance import hardware_provenance
from nnenergy.measure.store import JsonlStore
from nnenergy.measure.sweep_spec import REFERENCE, SweepInputError, SweepSpec, Threads
from nnenergy.measure.visits import AGAIN, LABEL, Pending, VisitBook
from nnenergy.schema import config_id, parse_config_id

log = logging.getLogger(__name__)
FULL_GC_EVERY_BLOCKS = 10


def inference_call(model, input_shape: tuple[int, ...], batch: int, backend=None):
    """A no-argument callable running one compiled pass of `model` on a fixed random batch."""
    backend = backend or backends.current()
    fn = backend.compile_model(model, input_shape)
    x = backend.random((batch, *input_shape))
    return lambda: fn(x)


def built_call(arch: str, size: int | None, batch: int, backend=None):
    """`inference_call` of the zoo's `arch` at input size `size`, built here."""
    built = zoo.build(arch, size)
    return inference_call(built.model, built.input_shape, batch, backend)


def reference_call(backend=None):
    """The protocol's reference model, built and compiled (rebuild it after `clear_session`)."""
    return built_call(*REFERENCE, backend=backend)


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
        self.progress.check_protocol(spec.protocol)
        self.visits = VisitBook(self.progress.visit_store, spec.protocol.visits, spec.protocol.visit_gap_min)
        self.given_up: set[tuple[str, str]] = set()  # visits that failed this session (`_give_up`)
        # models kept between a configuration's visits in this run (`model_cache`); one visit keeps none
        self.models = ModelCache(spec.keep_models_mb if spec.protocol.visits > 1 else 0)

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
        between = sum(p.purpose == LABEL for p in self.visits.pending(self._finished()))  # begun, no row yet
        bar = tqdm(total=total, initial=total - sum(len(j.batches) for j in pending) - between, unit="config",
                   desc=f"sweep {spec.name}", dynamic_ncols=True)
        ref = reference_call(self.backend)
        measured, blocks = False, 0
        # Measure-twice pairs stay within one boot of the machine, over the runs a sweep is measured in
        # (a sweep stopped by its budget and rerun, as measuring in chunks does, or killed and rerun).
        booted = booted_at()
        since_boot = booted.isoformat()  # the earliest block a measure-twice re-measure may pair with
        for p in self.visits.pending(self._finished()):  # a re-measure begun before a reboot is not a pair
            first = self.visits.first_at(AGAIN, p.config_id) if p.purpose == AGAIN else None
            if first is not None and first < booted and p.made < spec.protocol.visits:
                self._give_up(p, "its first visit was made before this boot of the machine", bar)
        try:
            while True:
                # At least one block: a budget smaller than the start-up still measures something.
                elapsed = time.perf_counter() - started
                if measured and spec.max_minutes is not None and elapsed > spec.max_minutes * 60:
                    break  # visits not made yet stay for the next run (`measure.visits`)
                begin = not (measured and spec.begin_minutes is not None and elapsed > spec.begin_minutes * 60)
                now = datetime.now(timezone.utc)
                due = self.visits.due(now, self._finished())
                if due:
                    self._revisit(due, ref, overhead, bar)
                elif pending and begin:
                    self._block(pending[:spec.block_architectures], ref, overhead, bar)
                    pending = pending[spec.block_architectures:]
                else:
                    wait = self.visits.seconds_to_next(now, self._finished())
                    if wait is None or (spec.max_minutes is not None and elapsed + wait > spec.max_minutes * 60):
                        break
                    bar.set_postfix_str(f"waiting {wait:.0f} s for the next visit")
                    time.sleep(wait + 0.5)
                    continue
                measured = True
                if begin:
                    self._remeasure(since_boot, ref)
                self.models.keep_only((p.purpose, p.arch, p.size) for p in self.visits.pending(self._finished()))
                # Free the graphs before the next block (kept models survive it). Its garbage collection took
                # ~1.4 s a block once hundreds of models were kept (6% of a Xeon run): every few blocks is enough.
                blocks += 1
                keras.backend.clear_session(free_memory=blocks % FULL_GC_EVERY_BLOCKS == 0)
                ref = reference_call(self.backend)
            left = len(self.visits.pending(self._finished()))  # begun, still between visits
            log.info("sweep %s: %d models built, %d visits made with a kept one", spec.name, self.models.misses,
                     self.models.hits)
            if pending or left:
                log.info("sweep %s: stopped by its budget with %d configurations to begin and %d between visits "
                         "(rerun to resume)", spec.name, sum(len(j.batches) for j in pending), left)
        finally:
            bar.close()
            self.progress.sessions.append({"session": session, "wall_time_s": time.perf_counter() - started,
                                           "profile": self.prov["profile"], "boot_id": boot_id()})
        result = self.progress.finish(spec.name, self.prov, spec.protocol.reference_statistic)
        result.complete = not pending and not left
        return result

    def _finished(self) -> set[tuple[str, str]]:
        """(purpose, config id) of visited configurations that need no more visits: a row, a pair, given up
        for good, or given up in this run."""
        return self.progress.finished_visits() | self.given_up

    def _measure(self, tasks: dict, ref, block_id: str):
        """Measure `tasks` in interleaved rounds beside `ref`; the block's reference is stored."""
        spec = self.spec
        canonical_path = self.progress.canonical_file(spec.protocol.reference_statistic)
        canonical = json.loads(canonical_path.read_text()) if canonical_path.exists() else None
        measurer = InterleavedMeasurer(self.meter, spec.protocol, ref, canonical, seed=hash(block_id) & 0xFFFF)
        results, ref_series = measurer.run(tasks)
        canonical = canonical or canonical_reference(canonical_path, ref_series, self.prov["profile"],
                                                     spec.protocol.reference_statistic)
        self.progress.blocks.append({
            "block": block_id, "configs": len(tasks), "contended_windows": measurer.contended_total,
            "reference_energy_j": ref_series.per_round("energy_j", "min"),
            "reference_latency_s": ref_series.per_round("latency_s", "min"),
            "speed_index": [v / canonical["energy_j"] for v in ref_series.per_round("energy_j", "min")],
        })
        return results, measurer.failed

    def _block(self, jobs: list[Job], ref, overhead: dict, bar) -> None:
        """Configurations never measured: their first (or only) visit."""
        spec, backend = self.spec, self.backend
        sync = backend.sync() or (lambda: None)  # a GPU pass has only been queued when its call returns
        block_id = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        tasks, meta = {}, {}
        for job in jobs:
            name = arch_name(job.arch)
            try:
                kept = self.models.get((LABEL, job.arch, job.size), lambda: self._build(job.arch, job.size))
                built, fn = kept.built, kept.fn
                infos = desc.describe(built.model)
                leaves = desc.leaf_layers(built.model)  # nested models flattened, as `describe` names them
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
                    t0 = time.perf_counter()
                    call()  # trace + first pass
                    sync()
                    one = time.perf_counter() - t0
                    if one > spec.max_seconds_per_pass * 1.5:  # maybe the trace's time: time a plain pass
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
                meta[cid] = (built, infos, leaves, batch, job)
        if not tasks:
            return
        try:
            results, failed = self._measure(tasks, ref, block_id)
        except MeasurementError as exc:
            for cid, (built, _, _, batch, _) in meta.items():
                self._skip(built.name, built.input_size, [batch], f"MeasurementError: {exc}", bar, retryable=True)
            return
        for cid, exc in failed.items():
            built, _, _, batch, _ = meta[cid]
            self._skip(built.name, built.input_size, [batch], f"MeasurementError: {exc}", bar, retryable=True)
        now = datetime.now(timezone.utc)
        for cid, res in results.items():
            built, infos, leaves, batch, job = meta[cid]
            if spec.protocol.visits > 1:  # the label waits for its later visits
                self.visits.add(LABEL, cid, job.arch, job.size, batch, res, now)
                continue
            self._label(built, infos, leaves, batch, res, tasks[cid], overhead, block_id, bar)

    def _label(self, built, infos, leaves, batch: int, res, call, overhead: dict, block_id: str, bar) -> None:
        """A measured configuration becomes rows: its layers traced in context (and isolated if sampled)."""
        try:
            prof = self.backend.profile(call, leaves, self.spec.profile_passes)
            self._record(built, infos, leaves, batch, res, prof, overhead, block_id)
        except (MeasurementError, *self.backend.errors) as exc:
            self._skip(built.name, built.input_size, [batch], f"{type(exc).__name__}: {exc}", bar,
                       retryable=True, advance=False)
        bar.update(1)
        bar.set_postfix(last=f"{built.name} {built.input_size}px b{batch}", speed=f"{res.speed_index:.2f}")

    def _revisit(self, due: list[Pending], ref, overhead: dict, bar) -> None:
        """The next visit of configurations whose last one is `visit_gap_min` old, a few architectures at a
        time; a configuration's last visit makes its label (a row, or a measure-twice pair)."""
        backend, sync = self.backend, self.backend.sync() or (lambda: None)
        block_id = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        groups: dict[tuple, list[Pending]] = {}  # (purpose, arch, size): one model per group
        for p in due:  # oldest first
            if p.purpose == AGAIN and p.made >= self.spec.protocol.visits:
                # a re-measure with all its visits needs no model: only its pair is left to store
                self._complete(p, self.visits.results(AGAIN, p.config_id)[:self.spec.protocol.visits], None, None,
                               None, None, overhead, block_id, bar)
            else:
                groups.setdefault((p.purpose, p.arch, p.size), []).append(p)
        tasks, meta = {}, {}
        for (purpose, arch, size), items in list(groups.items())[:self.spec.block_architectures]:
            try:
                hit = (purpose, arch, size) in self.models
                kept = self.models.get((purpose, arch, size), lambda: self._build(arch, size))
                built, fn = kept.built, kept.fn
                last = any(p.purpose == LABEL and p.made + 1 >= self.spec.protocol.visits for p in items)
                # Only a label's last visit becomes rows: its layers are described then.
                infos, leaves = (desc.describe(built.model), desc.leaf_layers(built.model)) if last else (None, None)
                for p in items:
                    x = backend.random((p.batch, *built.input_shape))
                    tasks[p.key] = (lambda f, t: (lambda: f(t)))(fn, x)
                    if not hit:  # trace + first pass; a kept model was traced at its first visit
                        tasks[p.key]()
                        sync()
                    meta[p.key] = (built, infos, leaves, p)
            except Exception as exc:  # built differently since its first visit (or not at all)
                for p in items:
                    tasks.pop(p.key, None)
                    meta.pop(p.key, None)
                    self._give_up(p, f"visit {p.made + 1}: {type(exc).__name__}: {exc}", bar)
        for key in [k for k in tasks if meta[k][3].made >= self.spec.protocol.visits]:
            # All its visits were stored before a kill or a failure: only its row (or pair) is left to make.
            built, infos, leaves, p = meta.pop(key)
            made = self.visits.results(p.purpose, p.config_id)[:self.spec.protocol.visits]
            self._complete(p, made, built, infos, leaves, tasks.pop(key), overhead, block_id, bar)
        if not tasks:
            return
        try:
            results, failed = self._measure(tasks, ref, block_id)
        except MeasurementError as exc:
            for _, _, _, p in meta.values():
                self._give_up(p, f"MeasurementError: {exc}", bar, for_good=False)
            return
        for key in failed:
            self._give_up(meta[key][3], f"MeasurementError: {failed[key]}", bar, for_good=False)
        now = datetime.now(timezone.utc)
        for key, res in results.items():
            built, infos, leaves, p = meta[key]
            made = self.visits.add(p.purpose, p.config_id, p.arch, p.size, p.batch, res, now, p.extra)
            if len(made) >= self.spec.protocol.visits:
                self._complete(p, made, built, infos, leaves, tasks[key], overhead, block_id, bar)

    def _complete(self, p: Pending, made: list, built, infos, leaves, call, overhead: dict, block_id: str,
                  bar) -> None:
        """A configuration's last visit is in: its label becomes rows, or its re-measure a pair. Whatever
        happens, it is not due again in this run (a failed row is retried on resume)."""
        try:
            if p.purpose == LABEL:
                self._label(built, infos, leaves, p.batch, combine_visits(made), call, overhead, block_id, bar)
            else:
                self._pair(p.config_id, p.extra, combine_visits(made), datetime.now(timezone.utc))
        except Exception as exc:  # one configuration's failure must not stop the sweep
            self._give_up(p, f"{type(exc).__name__}: {exc}", bar)
        self.given_up.add(p.key)

    def _give_up(self, p: Pending, reason: str, bar, for_good: bool = True) -> None:
        """A visit that failed: the configuration is dropped for this run (a label is retried on resume, up to
        `RETRIES_ON_RESUME` runs; a re-measure that cannot be rebuilt is recorded as failed; one whose windows
        failed, perhaps for a passing reason, only waits for the next run)."""
        self.given_up.add(p.key)
        if p.purpose == LABEL:
            name, size, batch = parse_config_id(p.config_id)
            self._skip(name, size, [batch], reason, bar, retryable=True)
        elif for_good:
            self._remeasure_failed(p.config_id, reason)

    def _remeasure_failed(self, config_id: str, reason: str) -> None:
        """A re-measure that cannot be made: recorded with its reason, so it is never retried."""
        self.progress.remeasured.append({"config_id": config_id, "error": reason[:300]})

    def _remeasure(self, since: str, ref) -> None:
        """Measure-twice: the selected configurations measured since `since` (this boot of the machine), once
        they are old enough, measured again whole (same protocol and visits, same canonical reference); each
        pair is stored as soon as it is complete, each visit as soon as it is read."""
        spec = self.spec
        done = ({r["config_id"] for r in self.progress.remeasured.values()}
                | {c for purpose, c in self._visited() if purpose == AGAIN})
        due = remeasure.due(self.progress.config_store.values(), done, spec.remeasure_share, spec.remeasure_after_min,
                            since, datetime.now(timezone.utc), spec.seed)
        if not due:
            return
        due = due[: spec.block_architectures * 2]
        tasks, rows_of = {}, {}
        for r in due:
            try:
                if r.get("source") == "file":
                    raise ValueError("a model file is not re-measured (its path is not in the row)")
                size = int(r["input_size"]) if r.get("source") in ("keras.applications", "builtin") else None
                # built afresh for the re-measure (the label's kept model is under another key), then kept
                kept = self.models.get((AGAIN, r["architecture"], size), lambda: self._build(r["architecture"], size))
                x = self.backend.random((int(r["batch_size"]), *kept.built.input_shape))
                tasks[r["config_id"]] = (lambda f, t: (lambda: f(t)))(kept.fn, x)
                rows_of[r["config_id"]] = (r, size)
            except Exception as exc:  # rebuilt differently (or not at all): record, never retry
                self._remeasure_failed(r["config_id"], f"{type(exc).__name__}: {exc}")
        if not tasks:
            return
        try:
            results, failed = self._measure(tasks, ref, datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
        except MeasurementError:
            return
        for cid, exc in failed.items():  # recorded, never retried (as a re-measure that cannot be rebuilt)
            self._remeasure_failed(cid, f"{type(exc).__name__}: {exc}")
        now = datetime.now(timezone.utc)
        for cid, res in results.items():
            first, size = rows_of[cid]
            label = {"first_energy_j": first["energy_j"], "first_latency_s": first["latency_s"],
                     "first_block": first["block"], **remeasure.raw_figures("first", first)}
            if spec.protocol.visits > 1:  # the pair waits for the re-measure's later visits
                self.visits.add(AGAIN, cid, first["architecture"], size, int(first["batch_size"]), res, now, label)
            else:
                self._pair(cid, label, res, now)

    def _build(self, arch: str, size: int | None):
        """A model built and compiled (traced at its first call)."""
        built = zoo.build(arch, size)
        return built, self.backend.compile_model(built.model, built.input_shape)

    def _visited(self) -> set[tuple[str, str]]:
        return {(r["purpose"], r["config_id"]) for r in self.progress.visit_store.values()}

    def _pair(self, cid: str, first: dict, res, now: datetime) -> None:
        """A measure-twice pair: the dataset's label and the re-measured one."""
        self.progress.remeasured.append({
            "config_id": cid, **first, "second_energy_j": res.energy_j, "second_latency_s": res.latency_s,
            **remeasure.raw_figures("second", res.__dict__), "second_at": now.isoformat(timespec="seconds"),
            "minutes_apart": (now - datetime.fromisoformat(first["first_block"])).total_seconds() / 60})

    def _record(self, built, infos, leaves: dict, batch: int, whole, prof, overhead: dict, block: str) -> None:
        """The configuration's rows, its layers isolated first where it is sampled for that."""
        base = rows.base_row(built, batch, self.prov)
        isolate = isolated(self.spec, base["config_id"])
        isos = [self._isolated(leaves[info.name], info, batch) if isolate else {} for info in infos]
        layer_rows = rows.layer_rows(base, infos, isos, batch, whole, prof)
        # how the visits were made belongs to the protocol: kept models, or one built per visit
        protocol = self.spec.protocol.__dict__ | {"keep_models_mb": self.models.max_bytes / 2**20}
        context = {"protocol": json.dumps(protocol), "block": block,
                   "arch_spec": built.spec.to_json() if built.spec is not None else None}
        self.progress.add_config(layer_rows, rows.model_row(base, layer_rows, isolate, whole, prof, overhead, context))

    def _skip(self, name, size, batches, reason, bar, advance=True, retryable=False) -> None:
        log.warning("skipping %s at %spx: %s", name, size, reason)
        self.progress.skip(name, size, batches, reason, retryable)
        if advance:
            bar.update(len(batches))
