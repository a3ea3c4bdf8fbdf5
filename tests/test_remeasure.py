"""The measure-twice noise figure: never a figure from too few pairs."""

from nnenergy.measure import remeasure


def _pair(first, second):
    return {"config_id": f"c{first}", "first_energy_j": first, "second_energy_j": second, "minutes_apart": 21.0}


def test_one_or_two_pairs_give_no_noise_figure_and_the_datasheet_says_why():
    # After the pairs' common factor one pair is always 0%: that must not read as a perfect dataset.
    for pairs in ([_pair(1.0, 0.9)], [_pair(1.0, 0.9), _pair(2.0, 2.4)]):
        a = remeasure.agreement(pairs)
        assert a["n"] == 0 and "rms_pct" not in a and a["pairs"] == len(pairs)
        text = "\n".join(remeasure.datasheet_lines(pairs, 0.05))
        assert f"{len(pairs)} configurations re-measured so far, fewer than the 3" in text and "RMS" not in text


def test_three_pairs_give_the_rms_after_their_common_factor():
    a = remeasure.agreement([_pair(1.0, 1.0), _pair(1.0, 1.1), _pair(1.0, 0.9)])
    assert a["n"] == 3 and abs(a["common_factor"] - 1.0) < 1e-9
    assert abs(a["rms_pct"] - 100 * (0.02 / 3) ** 0.5) < 1e-6 and a["within5_pct"] == 100 / 3
