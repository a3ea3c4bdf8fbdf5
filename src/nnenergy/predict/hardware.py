"""The hardware list: every profile with measured data or a registered predictor, and each profile's
own predictor (`nnenergy predict --hardware list|PROFILE`)."""

from __future__ import annotations

from pathlib import Path

from nnenergy.paths import data_root as default_data_root
from nnenergy.predict.loading import DEFAULT_MODEL_NAME
from nnenergy.registry import profile_alias
from nnenergy.tracking import store_uri


def hardware_model_uri(profile: str) -> str:
    """The registered predictor of one hardware profile: its own champion alias."""
    return f"models:/{DEFAULT_MODEL_NAME}@{profile_alias(profile)}"


def hardware_profiles(tracking_uri: str | None = None, data_root: str | Path | None = None) -> list[dict]:
    """Every hardware profile with measured data or a registered predictor: name, device, backend,
    measured configurations per dataset, and its champion's version (None when not trained).
    Reads Parquet footers and the registry; no TensorFlow."""
    import pyarrow.parquet as pq

    from nnenergy.measure.hardware import current_profile_name

    rows: dict[str, dict] = {}
    for folder in sorted(Path(data_root or default_data_root()).glob("*/*/models.parquet")):
        profile, dataset = folder.parent.parent.name, folder.parent.name
        r = rows.setdefault(profile, {"profile": profile, "device": None, "backend": "tensorflow", "datasets": {},
                                      "predictor_version": None})
        r["datasets"][dataset] = pq.ParquetFile(folder).metadata.num_rows
        if r["device"] is None:
            cols = [c for c in ("cpu_model", "cpu_cores", "gpu_model", "backend", "device")
                    if c in pq.read_schema(folder).names]
            table = pq.read_table(folder, columns=cols)
            if not table.num_rows:
                continue
            last = table.slice(table.num_rows - 1, 1).to_pylist()[0]  # one profile: any row says it
            gpu = str(last.get("gpu_model") or "none")
            # A CPU profile on a machine that also has a GPU measured the CPU: name the GPU only for gpu rows.
            on_gpu = last.get("device") == "gpu" or (last.get("device") is None and gpu not in ("none", "None", "nan"))
            r["device"] = f"GPU {gpu}" if on_gpu else f"CPU {last.get('cpu_model')} ({last.get('cpu_cores')} cores)"
            r["backend"] = last.get("backend") or r["backend"]
    from nnenergy.predict.loading import reachable

    reachable(store_uri(tracking_uri))  # a remote store that does not answer: one line in seconds, not a hang
    try:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(store_uri(tracking_uri))
        aliases = MlflowClient().get_registered_model(DEFAULT_MODEL_NAME).aliases or {}
    except Exception:  # no store or no registered predictor yet: the data side still lists
        aliases = {}
    for alias, version in aliases.items():
        prefix = profile_alias("")
        if alias.startswith(prefix):
            profile = alias[len(prefix):]
            rows.setdefault(profile, {"profile": profile, "device": None, "backend": None, "datasets": {},
                                      "predictor_version": None})["predictor_version"] = str(version)
    mine = current_profile_name()
    for r in rows.values():
        r["this_machine"] = r["profile"] == mine
    return list(rows.values())
