"""A resumable measurement sweep: whole models, their layers in isolation and in context."""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from nnenergy import dataset as ds
from nnenergy.measure import architectures, layers
from nnenergy.measure.incontext import profile_layers
from nnenergy.measure.meter import EnergyMeter, MeasurementError, MeterSettings
from nnenergy.measure.provenance import hardware_provenance
from nnenergy.measure.store import JsonlStore

log = logging.getLogger(__name__)


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
    isolate_layers: bool = True
    profile_passes: int = 2
    whole: MeterSettings = field(default_factory=MeterSettings)
    layer: MeterSettings = field(default_factory=lambda: MeterSettings(min_seconds=0.02))

    @classmethod
    def from_config(cls, cfg: dict) -> "SweepSpec":
        cfg = dict(cfg)
        cfg["whole"] = MeterSettings(**cfg.get("whole", {}))
        cfg["layer"] = MeterSettings(**cfg.get("layer", {}))
        cfg["model_files"] = list(cfg.get("model_files") or [])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in cfg.items() if k in known})


@dataclass
class SweepResult:
    output_dir: Path
    models: pd.DataFrame
    layers: pd.DataFrame
    skipped: list[dict]
    wall_time_s: float  # over all sessions of this sweep, resumed ones included
    provenance: dict


def _config_id(arch: str, size: int, batch: int) -> str:
    return f"{arch}|{size}|{batch}"


def compiled_inference(model, in_shape: tuple[int, ...]):
    """`model(x, training=False)` as one `tf.function` traced once for any batch size."""
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec((None, *in_shape), tf.float32)])


def _sync_for_devices():
    """A sync that waits for GPU work; CPU ops complete before a tf.function returns."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.test.experimental.sync_devices
    return None


class Sweep:
    def __init__(self, spec: SweepSpec):
        import tensorflow  # noqa: F401  (import before CodeCarbon samples the CPU)

        self.spec = spec
        self.meter = EnergyMeter(spec.country_iso_code, sync=_sync_for_devices())
        self.prov = hardware_provenance(self.meter.tracker)
        hw = self.prov["hardware_id"]
        self.out = Path(spec.output_dir)
        progress = self.out / "progress"
        self.config_store = JsonlStore(progress / "models.jsonl", key="config_id")
        self.layer_rows = JsonlStore(progress / "layers.jsonl", key="row_id")
        self.skip_store = JsonlStore(progress / "skipped.jsonl", key="config_id")
        self.sessions = JsonlStore(progress / "sessions.jsonl", key="session")
        self.signatures = JsonlStore(Path(spec.cache_dir) / hw / "signatures.jsonl", key="signature")
        other = {r["hardware_id"] for r in self.config_store.values()} - {hw}
        if other:
            raise RuntimeError(
                f"{self.out} holds measurements from hardware {sorted(other)}, this is {hw}; "
                f"set sweep.output_dir to a new folder"
            )

    # -- measurements ---------------------------------------------------------------
    def call_overhead(self) -> dict:
        """Cost of calling a compiled no-op: the floor under every isolated layer."""
        key = "call_overhead"
        if key not in self.signatures:
            import tensorflow as tf

            x = tf.zeros((1,))
            fn = tf.function(tf.identity)
            m = self.meter.measure(lambda: fn(x), self.spec.layer)
            self.signatures.append({"signature": key, **m.as_row("iso_")})
        return self.signatures[key]

    def _isolated(self, layer, info: layers.LayerInfo, batch: int) -> dict:
        sig = info.signature(batch, self.prov["hardware_id"])
        if sig not in self.signatures:
            rec = {"signature": sig, "type": info.type}
            try:
                fn = layers.isolated_callable(layer, info, batch)
                rec.update(self.meter.measure(fn, self.spec.layer).as_row("iso_"))
            except Exception as exc:  # one unmeasurable layer must not stop a sweep
                rec["iso_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                log.warning("isolating %s (%s) failed: %s", info.name, info.type, rec["iso_error"])
            self.signatures.append(rec)
        return self.signatures[sig]

    def _measure_config(self, built, infos, fn, x, batch: int, overhead: dict, bar) -> None:
        spec = self.spec
        cid = _config_id(built.name, built.input_size, batch)
        whole = self.meter.measure(lambda: fn(x), spec.whole)
        prof = profile_layers(lambda: fn(x), [i.name for i in infos], spec.profile_passes)
        op_total = prof.total_op_time_s
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        base = {
            "config_id": cid,
            "architecture": built.name,
            "family": built.family,
            "source": built.source,
            "input_size": built.input_size,
            "batch_size": batch,
            **self.prov,
            "measured_at": now,
        }
        rows, sums = [], {"flops": 0.0, "params": 0.0, "mem_bytes": 0.0, "iso_e": 0.0, "iso_t": 0.0}
        iso_ok = True
        model_layers = {l.name: l for l in built.model.layers}
        for info in infos:
            iso = self._isolated(model_layers[info.name], info, batch) if spec.isolate_layers else {}
            cost = layers.analytic_cost(info, batch)
            ctx_t = prof.op_time_s.get(info.name, 0.0)
            share = ctx_t / op_total if op_total > 0 else math.nan
            iso_e = iso.get("iso_energy_j")
            iso_ok &= iso_e is not None
            sums["iso_e"] += iso_e or 0.0
            sums["iso_t"] += iso.get("iso_latency_s") or 0.0
            for k in ("flops", "params", "mem_bytes"):
                sums[k] += cost[k]
            rows.append(
                {
                    **base,
                    "row_id": f"{cid}|{info.index}",
                    "layer_index": info.index,
                    "layer_name": info.name,
                    "layer_type": info.type,
                    "signature": info.signature(batch, self.prov["hardware_id"]),
                    "layer_config": info.config_json,
                    "input_shapes": json.dumps([list(s) for s in info.input_shapes]),
                    "output_shape": json.dumps(list(info.output_shape)),
                    "n_inputs": len(info.input_shapes),
                    **cost,
                    **{k: iso.get(k) for k in ("iso_energy_j", "iso_latency_s", "iso_power_w", "iso_spread", "iso_passes", "iso_windows", "iso_error")},
                    "iso_window_energies_j": json.dumps(iso.get("iso_window_energies_j") or []),
                    "ctx_op_time_s": ctx_t,
                    "ctx_share": share,
                    "ctx_energy_j": whole.energy_j * share,
                    "ctx_latency_s": whole.latency_s * share,
                }
            )
        n = len(infos)
        oh_t, oh_e = overhead["iso_latency_s"], overhead["iso_energy_j"]
        model_row = {
            **base,
            "n_layers": n,
            "n_signatures": len({r["signature"] for r in rows}),
            "flops": sums["flops"],
            "params": sums["params"],
            "mem_bytes": sums["mem_bytes"],
            **{k: v for k, v in whole.as_row().items() if k != "window_energies_j"},
            "window_energies_j": json.dumps(whole.window_energies_j),
            "iso_sum_energy_j": sums["iso_e"] if iso_ok else None,
            "iso_sum_latency_s": sums["iso_t"] if iso_ok else None,
            "call_overhead_s": oh_t,
            "call_overhead_j": oh_e,
            "additivity": whole.energy_j / sums["iso_e"] if iso_ok and sums["iso_e"] > 0 else None,
            "additivity_latency": whole.latency_s / sums["iso_t"] if iso_ok and sums["iso_t"] > 0 else None,
            "additivity_overhead_corrected": (
                whole.energy_j / (sums["iso_e"] - n * oh_e) if iso_ok and sums["iso_e"] > n * oh_e else None
            ),
            "ctx_op_time_s": op_total,
            "ctx_unattributed_s": prof.unattributed_s,
            "wall_over_op_time": whole.latency_s / op_total if op_total > 0 else None,
        }
        for r in rows:
            self.layer_rows.append(r)
        # The model row goes last: its presence marks the configuration complete.
        self.config_store.append(model_row)
        bar.set_postfix(layers=len(self.signatures), last=f"{built.name} {built.input_size}px b{batch}")

    # -- driver --------------------------------------------------------------------
    def jobs(self) -> list[tuple[str, int | None]]:
        spec = self.spec
        jobs = [(a, s) for a in spec.architectures for s in spec.input_sizes]
        jobs += [(f, None) for f in spec.model_files]
        return jobs

    def run(self) -> SweepResult:
        import keras
        import tensorflow as tf

        spec = self.spec
        started = time.perf_counter()
        session = datetime.now(timezone.utc).isoformat()
        overhead = self.call_overhead()
        jobs = self.jobs()
        total = len(jobs) * len(spec.batch_sizes)
        done_ids = {r["config_id"] for r in self.config_store.values()} | {r["config_id"] for r in self.skip_store.values()}
        bar = tqdm(total=total, unit="config", desc=f"sweep {spec.name}", dynamic_ncols=True)
        try:
            for arch, size in jobs:
                is_file = size is None
                name = Path(arch).stem if is_file else arch
                built = None
                if is_file:  # a file's id carries its own input size, known once loaded
                    try:
                        built = architectures.build(arch, None)
                        size = built.input_size
                    except architectures.ArchitectureError as exc:
                        self._skip(name, 0, spec.batch_sizes, str(exc), bar)
                        continue
                pending = [b for b in spec.batch_sizes if _config_id(name, size, b) not in done_ids]
                bar.update(len(spec.batch_sizes) - len(pending))
                if not pending:
                    continue
                try:
                    built = built or architectures.build(arch, size)
                except architectures.ArchitectureError as exc:
                    self._skip(name, size, pending, str(exc), bar)
                    continue
                infos = layers.describe(built.model)
                in_shape = tuple(int(d) if d else size for d in built.model.inputs[0].shape[1:])
                fn = compiled_inference(built.model, in_shape)
                for batch in pending:
                    x = tf.random.uniform((batch, *in_shape))
                    try:
                        self._measure_config(built, infos, fn, x, batch, overhead, bar)
                    except (MeasurementError, tf.errors.OpError, ValueError, RuntimeError) as exc:
                        self._skip(name, size, [batch], f"{type(exc).__name__}: {exc}", bar, advance=False)
                    bar.update(1)
                keras.backend.clear_session()  # free the graph before the next architecture
        finally:
            bar.close()
            self.sessions.append({"session": session, "wall_time_s": time.perf_counter() - started})
        return self.finish()

    def _skip(self, name, size, batches, reason, bar, advance=True) -> None:
        log.warning("skipping %s at %spx: %s", name, size, reason)
        for b in batches:
            self.skip_store.append(
                {"config_id": _config_id(name, size or 0, b), "architecture": name, "input_size": size, "batch_size": b, "reason": reason}
            )
        if advance:
            bar.update(len(batches))

    def finish(self) -> SweepResult:
        models = pd.DataFrame(self.config_store.values())
        layer_df = pd.DataFrame(self.layer_rows.values())
        if not models.empty:
            layer_df = layer_df[layer_df["config_id"].isin(models["config_id"])]  # drop half-done configs
            models = models.sort_values(["architecture", "input_size", "batch_size"]).reset_index(drop=True)
            layer_df = layer_df.sort_values(["architecture", "input_size", "batch_size", "layer_index"]).reset_index(drop=True)
            ds.save(models, layer_df, self.out)
        # Only this spec's skips: an architecture dropped from the config is no longer "skipped".
        names = set(self.spec.architectures) | {Path(f).stem for f in self.spec.model_files}
        skipped = [r for r in self.skip_store.values() if r["architecture"] in names]
        (self.out / "skipped.json").write_text(json.dumps(skipped, indent=1))
        wall = sum(r["wall_time_s"] for r in self.sessions.values())
        if not models.empty:
            from nnenergy.measure.datasheet import write

            write(self.out, self.spec.name, wall, skipped)
        return SweepResult(self.out, models, layer_df, skipped, wall, self.prov)


def additivity_summary(models: pd.DataFrame) -> dict:
    """min / median / max of each additivity factor, for reports and MLflow metrics."""
    out = {}
    for col in ("additivity", "additivity_overhead_corrected", "wall_over_op_time"):
        vals = [v for v in models.get(col, pd.Series(dtype=float)).dropna().tolist()]
        if vals:
            out.update({f"{col}_min": min(vals), f"{col}_median": statistics.median(vals), f"{col}_max": max(vals)})
    return out
