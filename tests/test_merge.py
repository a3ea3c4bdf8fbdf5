"""`nnenergy merge`: datasets of several jobs or hosts become one, without loss, duplicates or mixed CPUs.

The cluster path (two `submitit_local` jobs, then a merge) runs end to end in tests/test_team_server.py."""

from __future__ import annotations

import pytest
from conftest import foreign_profile

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
    from nnenergy.cli.merge import main

    _, result = tiny_sweep
    whole = ds.load(result.output_dir)
    other = whole.models.assign(profile=foreign_profile())
    ds.save(other, whole.layers, tmp_path / "other")
    with pytest.raises(MergeError, match="refusing to mix hardware profiles"):
        merge(tmp_path / "out", [result.output_dir, tmp_path / "other"])
    assert not (tmp_path / "out" / ds.MODELS_FILE).exists()
    cut = whole.layers.iloc[:-1]  # a job killed mid-write lost one layer row
    ds.save(whole.models, cut, tmp_path / "cut")
    assert main([str(tmp_path / "out"), str(result.output_dir), str(tmp_path / "cut")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing layer rows" in err and "\n" not in err


def test_merge_refuses_missing_inputs_shipped_outputs_and_held_out_sets(tiny_sweep, tmp_path, capsys):
    from nnenergy.cli.merge import main

    _, result = tiny_sweep
    with pytest.raises(MergeError, match="no such input: .*nowhere"):
        merge(tmp_path / "out", [result.output_dir, tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MergeError, match="empty is not a dataset"):
        merge(tmp_path / "out", [result.output_dir, tmp_path / "empty"])
    whole = ds.load(result.output_dir)
    ds.save(whole.models, whole.layers, tmp_path / "shipped")
    ds.save(whole.models, whole.layers, tmp_path / "external")
    with pytest.raises(MergeError, match="already holds a dataset: pass --append"):
        merge(tmp_path / "shipped", [result.output_dir])
    with pytest.raises(MergeError, match="held-out test set .*external"):
        merge(tmp_path / "shipped", [tmp_path / "external"], append=True)
    assert len(ds.load(tmp_path / "shipped").models) == len(whole.models)  # nothing written
    assert merge(tmp_path / "shipped", [result.output_dir], append=True)["duplicates_dropped"] == len(whole.models)
    assert main([str(tmp_path / "out"), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nnenergy merge: error: no such input: {tmp_path / 'nowhere'}"
