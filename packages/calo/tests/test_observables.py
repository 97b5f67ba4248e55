from __future__ import annotations

import numpy as np
import pytest

from calo.observables import (
    e_ratio,
    high_level_features,
    high_level_features_cc,
    shower_observables,
)


def _one_shower():
    s = {"energy": np.array([[10.0]], np.float32),
         "layer_0": np.zeros((1, 3, 96), np.float32),
         "layer_1": np.zeros((1, 12, 12), np.float32),
         "layer_2": np.zeros((1, 12, 6), np.float32)}
    s["layer_0"][0, 1, 47] = 3000.0
    s["layer_0"][0, 1, 48] = 1000.0
    s["layer_1"][0, 5, 5] = 3000.0
    s["layer_1"][0, 6, 5] = 3000.0
    return s


def test_observables_known_answers():
    obs = shower_observables(_one_shower())
    assert obs["E_0"][0] == 4000.0 and obs["E_1"][0] == 6000.0 and obs["E_2"][0] == 0.0
    assert obs["E_tot_over_E_inc"][0] == pytest.approx(1.0)
    assert obs["f_0"][0] == pytest.approx(0.4)
    assert obs["occupancy_0"][0] == pytest.approx(2 / 288)
    assert not any(k.startswith("sparsity") for k in obs)  # one name per quantity
    assert obs["depth"][0] == 1
    assert obs["shower_depth"][0] == pytest.approx(0.6)
    assert obs["shower_depth_width"][0] == pytest.approx(np.sqrt(0.6 - 0.36))
    # Layer 1: two equal cells in rows at x = -20 and +20 mm -> width 20 mm, centre 0.
    assert obs["width_x_1"][0] == pytest.approx(20.0)
    assert obs["centre_x_1"][0] == pytest.approx(0.0, abs=1e-9)
    assert obs["centre_y_1"][0] == pytest.approx(-20.0)  # column 5 of 12: y = -20 mm
    assert obs["width_y_1"][0] == pytest.approx(0.0, abs=1e-6)
    # Layer 0 (CaloGAN's axis: the 3 rows of 160 mm): both cells in the middle row -> width 0;
    # along y, cells at -2.5 and +2.5 mm with weights 3:1 -> sqrt(0.75 * 0.25) * 5 mm.
    assert obs["width_x_0"][0] == pytest.approx(0.0, abs=1e-6)
    assert obs["width_y_0"][0] == pytest.approx(np.sqrt(0.75 * 0.25) * 5.0)
    assert obs["centre_y_0"][0] == pytest.approx(-1.25)  # (3 (-2.5) + 2.5) / 4 mm
    assert obs["E_ratio_0"][0] == pytest.approx(2000.0 / (4000.0 + 1e-7))
    assert obs["E_ratio_1"][0] == 0.0 and obs["E_ratio_2"][0] == 0.0
    assert obs["width_x_2"][0] == 0.0 and obs["centre_x_2"][0] == 0.0
    assert high_level_features(_one_shower()).shape == (1, 19)


def test_calochallenge_high_level_features_by_hand():
    hlf = high_level_features_cc(_one_shower())[0]
    assert hlf.shape == (16,)
    assert hlf[0] == pytest.approx(4.0)  # log10(10 GeV / MeV)
    assert hlf[1:4] == pytest.approx(np.log10(np.array([4000.0, 6000.0, 0.0]) + 1e-8))
    # centres x (layers 0..2), centres y, widths x, widths y; mm / 100
    assert hlf[4:7] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert hlf[7:10] == pytest.approx([-0.0125, -0.2, 0.0], abs=1e-9)
    assert hlf[13] == pytest.approx(np.sqrt(0.75 * 0.25) * 5.0 / 100.0)


def test_e_ratio_of_empty_image_is_zero():
    assert e_ratio(np.zeros((2, 3, 4))).tolist() == [0.0, 0.0]
