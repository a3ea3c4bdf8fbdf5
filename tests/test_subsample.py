"""How a layer kind's training rows are subsampled (`learn.sampling.subsample`): by source, so that a
growing generated space does not crowd the real networks' layers out of the sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnenergy.learn.layerwise import LayerwisePredictor
from nnenergy.learn.sampling import sources, subsample


def _strata():
    return np.array(["keras.applications"] * 5 + ["variant"] * 100 + ["generated"] * 1000)


def test_each_source_gets_an_equal_share_and_a_small_one_leaves_the_rest_to_the_others():
    strata = _strata()
    rows = np.arange(len(strata))
    got = subsample(rows, 60, strata, np.random.default_rng(0))
    assert len(got) == 60 and len(set(got)) == 60 and (np.diff(got) > 0).all()
    counts = pd.Series(strata[got]).value_counts()
    assert counts["keras.applications"] == 5  # all of it: fewer rows than its share of 20
    assert {counts["variant"], counts["generated"]} == {27, 28}
    uniform = subsample(rows, 60, None, np.random.default_rng(0))
    assert len(uniform) == 60 and pd.Series(strata[uniform]).value_counts().get("keras.applications", 0) < 5
    assert (subsample(rows[:50], 60, strata, np.random.default_rng(0)) == rows[:50]).all()  # under the cap
    assert (subsample(rows, None, strata, np.random.default_rng(0)) == rows).all()  # no cap
    # a subset of the rows (a kind's) is drawn from its own strata only
    kind = rows[::7]
    got = subsample(kind, 30, strata, np.random.default_rng(1))
    assert set(got) <= set(kind) and len(got) == 30


def test_the_kernel_sweeps_share_comes_on_top_of_the_cap():
    """Joining a kernel sweep leaves the networks' own sources the rows they had without it."""
    strata = np.concatenate([_strata(), np.array(["kernel"] * 1000)])
    rows = np.arange(len(strata))
    got = pd.Series(strata[subsample(rows, 60, strata, np.random.default_rng(0))]).value_counts()
    assert got["keras.applications"] == 5 and {got["variant"], got["generated"]} == {27, 28}  # as without kernels
    assert got["kernel"] == 20 and got.sum() == 80  # one more share of 60 / 3
    only = subsample(rows[-50:], 10, strata, np.random.default_rng(0))  # a kind with kernel rows only: the cap
    assert len(only) == 10


def test_a_rows_source_comes_from_its_configuration():
    feats = pd.DataFrame({"config_id": ["a", "a", "b", "c"]})
    models = pd.DataFrame({"config_id": ["a", "b"], "source": ["generated", "keras.applications"]})
    assert sources(feats, models).tolist() == ["generated", "generated", "keras.applications", "unknown"]
    assert sources(feats, None) is None


def test_an_unknown_way_to_subsample_is_refused_before_fitting():
    with pytest.raises(ValueError, match="subsample must be one of"):
        LayerwisePredictor(lambda: None, subsample="by-luck").fit(pd.DataFrame(), np.zeros((0, 2)))
