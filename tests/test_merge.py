"""`nnenergy merge`: datasets of several jobs or hosts become one, without loss, duplicates or mixed CPUs."""

from __future__ import annotations

import pytest

from nnenergy import dataset as ds
from nnenergy.measure.merge import MergeError, merge


def _split(data, keep, path):
    ids = data.models.loc[keep, "config_id"]
    ds.save(data.models[keep], data.layers[data.layers["config_id"].isin(ids)], path)
    return path


def test_two_jobs_merge_without_loss_or_duplicates(tiny_sweep, tmp_path):
    _, result = tiny_sweep
    whole = ds.load(result.output_dir)
    half = whole.models.index % 2 == 0
    a = _split(whole, half, tmp_path / "job_a")
    b = _split(whole, ~half | (whole.models.index == 0), tmp_path / "job_b")  # one configuration in both
    info = merge(tmp_path / "merged", [a, b])
    merged = ds.load(tmp_path / "merged")
    assert info["duplicates_dropped"] == 1
    assert sorted(merged.models["config_id"]) == sorted(whole.models["config_id"])
    assert len(merged.layers) == len(whole.layers)
    assert (tmp_path / "merged" / ds.DATASHEET_FILE).exists()


def test_merge_refuses_to_mix_cpus_and_incomplete_rows(tiny_sweep, tmp_path, capsys):
    from nnenergy.measure.merge import main

    _, result = tiny_sweep
    whole = ds.load(result.output_dir)
    other = whole.models.assign(profile="intel-xeon-avx512-2c")
    ds.save(other, whole.layers, tmp_path / "xeon")
    with pytest.raises(MergeError, match="refusing to mix hardware profiles"):
        merge(tmp_path / "out", [result.output_dir, tmp_path / "xeon"])
    assert not (tmp_path / "out" / ds.MODELS_FILE).exists()
    cut = whole.layers.iloc[:-1]  # a job killed mid-write lost one layer row
    ds.save(whole.models, cut, tmp_path / "cut")
    assert main([str(tmp_path / "out"), str(result.output_dir), str(tmp_path / "cut")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing layer rows" in err and "\n" not in err


@pytest.mark.slow
def test_tiny_sweep_through_the_submitit_launcher(tmp_path):
    """The SLURM path's code, run locally: a Hydra multirun of the measure app through
    hydra-submitit-launcher's `submitit_local`, one job per sweep, each into its own folder; the two
    jobs start together and the host lock makes the second wait (never two measuring at once)."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "jobs"
    cmd = [sys.executable, "-m", "nnenergy.apps.measure", "-m", "sweep=tiny",
           "sweep.architectures=[tiny_cnn],[tiny_mlp]",
           "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
           "lock_wait_s=300",  # the local executor starts both jobs at once: the host lock queues them
           f"sweep.output_dir={out}/${{hydra:job.num}}", f"sweep.cache_dir={tmp_path / 'cache'}",
           f"mlflow.tracking_uri=sqlite:///{tmp_path / 'm.db'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-1500:]
    jobs = sorted(p for p in out.iterdir() if p.is_dir())  # (beside reference.json, the profile's reference)
    assert [ds.load(j).models["architecture"].unique().tolist() for j in jobs] == [["tiny_cnn"], ["tiny_mlp"]]
    info = merge(tmp_path / "merged", jobs)  # the jobs' datasets become one, per profile
    assert info["configurations"] == 4 and info["duplicates_dropped"] == 0
