"""A sweep's state on disk, which makes it resumable: `progress/*.jsonl` (rows appended as they are
measured; a model row marks its configuration complete), the shipped dataset a sweep resumed on
another day starts from, skips, sessions and blocks, the profile's canonical reference, and the
dataset written at the end of each session."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from nnenergy import dataset as ds
from nnenergy.measure import remeasure
from nnenergy.measure.incontext import restore_untraced
from nnenergy.measure.protocol import ProtocolSettings
from nnenergy.measure.store import JsonlStore
from nnenergy.measure.sweep_spec import REFERENCE, SweepInputError
from nnenergy.measure.visits import AGAIN, LABEL, VISITS_FILE
from nnenergy.schema import config_id

log = logging.getLogger(__name__)

RETRIES_ON_RESUME = 3  # a measurement that failed is tried again on resume, this many times in all
# The protocol settings that define a label (the contention thresholds only decide which windows are redone).
LABEL_KEYS = ("rounds", "windows", "min_seconds", "min_passes", "warmup", "statistic", "normalise", "visits",
              "visit_gap_min")


def label_protocol(stored) -> dict | None:
    """The label-defining settings of a row's `protocol` JSON; keys older rows lack take the defaults they
    were measured under (`ProtocolSettings`' defaults are the first protocol's). None: no protocol recorded."""
    if not isinstance(stored, str) or not stored:
        return None
    settings, defaults = json.loads(stored), ProtocolSettings()
    return {k: settings.get(k, getattr(defaults, k)) for k in LABEL_KEYS}


def dataset_protocol(out: Path) -> dict | None:
    """The protocol of the newest row that records one in the dataset in `out` (its progress, else its
    shipped Parquet), read without writing anything; None for a new dataset."""
    rows = out / "progress" / "models.jsonl"
    if rows.exists() and rows.stat().st_size:
        for line in reversed(rows.read_text().splitlines()):
            try:  # a line cut by a kill is skipped, as the store skips it
                found = label_protocol(json.loads(line).get("protocol"))
            except ValueError:
                continue
            if found:
                return found
    if (out / ds.MODELS_FILE).exists():
        stored = pd.read_parquet(out / ds.MODELS_FILE, columns=["protocol"])["protocol"].dropna()
        return label_protocol(stored.iloc[-1]) if len(stored) else None
    return None


@dataclass
class SweepResult:
    output_dir: Path
    models: pd.DataFrame
    layers: pd.DataFrame
    skipped: list[dict]
    wall_time_s: float  # over all sessions of this sweep, resumed ones included
    provenance: dict
    complete: bool = True  # False when `max_minutes` stopped it early


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


class Progress:
    """The progress stores of the dataset folder `out` (created, or seeded from a shipped dataset)."""

    def __init__(self, out: Path):
        self.out = out
        self._check_writable()
        progress = out / "progress"
        self.config_store = JsonlStore(progress / "models.jsonl", key="config_id")
        self.layer_rows = JsonlStore(progress / "layers.jsonl", key="row_id")
        self.skip_store = JsonlStore(progress / "skipped.jsonl", key="config_id")
        self.sessions = JsonlStore(progress / "sessions.jsonl", key="session")
        self.blocks = JsonlStore(progress / "reference.jsonl", key="block")
        self.remeasured = JsonlStore(progress / "remeasure.jsonl", key="config_id")
        self.visit_store = JsonlStore(progress / "visits.jsonl", key="key")  # `measure.visits`
        self._import_shipped()

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
        shipped = (self.out / ds.MODELS_FILE).exists()
        if len(self.config_store) or len(self.visit_store) or not (shipped or (self.out / VISITS_FILE).exists()):
            return
        if shipped:  # a first run stopped before any label was complete ships its visits only
            data = ds.load(self.out, stored=True)
            for rec in data.layers.to_dict("records"):
                self.layer_rows.append(rec, flush=False)
            for rec in data.models.to_dict("records"):
                self.config_store.append(rec, flush=False)
            self.layer_rows.sync()
            self.config_store.sync()
        # Skips and past sessions travel with the dataset too (progress/ is not committed).
        for name, store in (("skipped.json", self.skip_store), ("sessions.json", self.sessions),
                            ("blocks.json", self.blocks), (remeasure.REMEASURE_FILE, self.remeasured),
                            (VISITS_FILE, self.visit_store)):
            if (self.out / name).exists():
                for rec in json.loads((self.out / name).read_text()):
                    store.append(rec, flush=False)
                store.sync()
        log.info("resuming %s from its %d shipped configurations and %d visits", self.out, len(self.config_store),
                 len(self.visit_store))

    def check_profile(self, mine: str) -> None:
        # Rows older than profiles carry only a hardware id: `<profile>-<hash>`.
        theirs = {r.get("profile") or str(r.get("hardware_id", "")).rsplit("-", 1)[0]
                  for r in self.config_store.values()} - {mine}
        if theirs:
            raise SweepInputError(
                f"{self.out} holds measurements of hardware profile {sorted(map(str, theirs))}, but this machine is "
                f"{mine}; rows of two CPUs never share a dataset: measure into data/{mine}/ instead")

    def check_protocol(self, mine: ProtocolSettings) -> None:
        """Labels of two protocols never share a dataset: a resumed one keeps the protocol it has."""
        theirs = dataset_protocol(self.out)  # the bring-up reads it so too
        differ = {k: v for k, v in (theirs or {}).items() if v != getattr(mine, k)}
        if theirs and theirs["visits"] == mine.visits == 1:
            differ.pop("visit_gap_min", None)  # the gap between visits means nothing with one visit
        if differ:
            raise SweepInputError(
                f"{self.out} was measured with protocol " + ", ".join(f"{k}={v}" for k, v in differ.items())
                + " where this run has " + ", ".join(f"{k}={getattr(mine, k)}" for k in differ)
                + "; labels of two protocols never share a dataset: continue it with "
                + " ".join(f"sweep.protocol.{k}={v}" for k, v in differ.items())
                + ", or measure into another sweep.output_dir")

    def measured(self) -> set[str]:
        return {r["config_id"] for r in self.config_store.values()}

    def given_up(self) -> set[str]:
        """Skipped for good: not retryable, or retried as often as allowed."""
        return {r["config_id"] for r in self.skip_store.values()
                if not r.get("retryable") or r.get("attempts", 1) >= RETRIES_ON_RESUME}

    def finished_visits(self) -> set[tuple[str, str]]:
        """(purpose, config id) whose visits are over: a row, a skip for good, a measure-twice pair (or its
        recorded failure)."""
        return ({(LABEL, c) for c in self.measured() | self.given_up()}
                | {(AGAIN, r["config_id"]) for r in self.remeasured.values()})

    def done(self) -> set[str]:
        """The configurations not to begin again: measured, skipped for good, or visited (`measure.visits`:
        their next visits are due later)."""
        # Measured stays done even where an older failure of it is on record.
        visited = {r["config_id"] for r in self.visit_store.values() if r["purpose"] == LABEL}
        return self.measured() | self.given_up() | visited

    def skip(self, name, size, batches, reason, retryable=False) -> None:
        for b in batches:
            cid = config_id(name, size or 0, b)
            attempts = self.skip_store[cid].get("attempts", 0) + 1 if cid in self.skip_store else 1
            self.skip_store.append({"config_id": cid, "architecture": name, "input_size": size, "batch_size": b,
                                    "reason": str(reason)[:500], "retryable": retryable, "attempts": attempts})

    def add_config(self, layer_rows: list[dict], model_row: dict) -> None:
        for r in layer_rows:
            self.layer_rows.append(r, flush=False)
        self.layer_rows.sync()
        # The model row goes last: its presence marks the configuration complete.
        self.config_store.append(model_row)

    def canonical_file(self, statistic: str) -> Path:
        """One canonical reference per profile and way of reading the reference (`statistic`): every dataset
        of this CPU measured by one protocol shares its scale. The profile's first protocol owns
        `reference.json`; a protocol reading the reference another way (issue 30's) gets
        `reference-<statistic>.json`."""
        base = self.out.parent / "reference.json"
        if base.exists() and json.loads(base.read_text()).get("statistic", "round_min_median") != statistic:
            return self.out.parent / f"reference-{statistic}.json"
        return base

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

    def finish(self, name: str, prov: dict, statistic: str) -> SweepResult:
        """Write the dataset (Parquet tables, skips, sessions, blocks, re-measures, the canonical reference
        its labels are on (`statistic`: see `canonical_file`), DATASHEET.md) from the stores."""
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
        # Visits of configurations still short of their last one travel with the dataset (a resume in a
        # fresh clone makes the rest); finished ones are in their row or pair already.
        finished = self.finished_visits()
        open_visits = [r for r in self.visit_store.values() if (r["purpose"], r["config_id"]) not in finished]
        if open_visits or (self.out / VISITS_FILE).exists():
            (self.out / VISITS_FILE).write_text(json.dumps(open_visits))
        canonical = self.canonical_file(statistic)
        if canonical.exists():  # the scale its labels are on, beside them (predictors store it)
            (self.out / "canonical.json").write_text(canonical.read_text())
        wall = sum(r["wall_time_s"] for r in self.sessions.values())
        if not models.empty:
            from nnenergy.measure.datasheet import write

            write(self.out, name, wall, skipped)
        return SweepResult(self.out, models, layer_df, skipped, wall, prov)
