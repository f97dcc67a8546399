"""The test-set binarization protocols: threshold, and the papers' stochastic one."""

import numpy as np
import pytest

from pixelcnn_np.data import STOCHASTIC_TEST_SEED, binarize, binarize_test_set
from pixelcnn_np.losses import per_pixel_nll
from pixelcnn_np.models import get_model, make_config, model_input
from pixelcnn_np.train import evaluate, nll_per_pixel


def grey(n=12, h=6, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_threshold_protocol_is_the_threshold():
    g = grey()
    assert np.array_equal(binarize_test_set(g, "threshold"), binarize(g, "threshold"))


def test_stochastic_protocol_is_fixed_and_independent_of_the_prefix():
    g = grey(n=20)
    full = binarize_test_set(g, "stochastic")
    assert np.array_equal(full, binarize_test_set(g, "stochastic", draw=0))     # the same every call
    assert np.array_equal(full[:7], binarize_test_set(g[:7], "stochastic"))       # --limit sees the same digits
    assert set(np.unique(full)) <= {0, 1}
    # image i of draw k is exactly the documented generator's draw
    rng = np.random.default_rng([STOCHASTIC_TEST_SEED, 0, 3])
    assert np.array_equal(full[3], binarize(g[3], "dynamic", rng=rng))
    # another draw is another test set
    assert not np.array_equal(full, binarize_test_set(g, "stochastic", draw=1))


def test_stochastic_protocol_has_the_bernoulli_mean():
    g = np.full((400, 8, 8), 77, dtype=np.uint8)            # p = 77/255 ~ 0.302 for 25,600 pixels
    m = binarize_test_set(g, "stochastic").mean()
    assert abs(m - 77 / 255) < 4 * np.sqrt(0.302 * 0.698 / g.size)
    # pixels 0 and 255 are certain
    edge = np.array([[[0, 255]]], dtype=np.uint8)
    assert binarize_test_set(edge, "stochastic").tolist() == [[[0, 1]]]


@pytest.mark.parametrize("protocol, draw", [("otsu", 0), ("stochastic", -1), ("stochastic", 1.5)])
def test_bad_protocol_arguments(protocol, draw):
    with pytest.raises(ValueError):
        binarize_test_set(grey(), protocol, draw)


def test_evaluate_under_the_stochastic_protocol():
    config = make_config("pixelcnn", hidden=4, n_layers=1, kernel_size=3, height=6, width=6)
    params = get_model(config).init_params(config, np.random.default_rng(1), np.float64)
    g = grey()

    def by_hand(pixels):
        logits, _ = get_model(config).forward(params, model_input(pixels, config, np.float64), config)
        return per_pixel_nll(logits, pixels, "binary").mean()

    d0, d1 = (binarize_test_set(g, "stochastic", k) for k in (0, 1))
    assert np.isclose(evaluate(params, config, g, batch_size=5, protocol="stochastic"), by_hand(d0))
    assert np.isclose(evaluate(params, config, g, protocol="stochastic", draws=2), (by_hand(d0) + by_hand(d1)) / 2)
    assert np.isclose(evaluate(params, config, g), by_hand(binarize(g)))
    # the protocols measure different digits (the control that the flag is not ignored)
    assert not np.isclose(evaluate(params, config, g), evaluate(params, config, g, protocol="stochastic"))
    per_pixel = nll_per_pixel(params, config, g, protocol="stochastic", draw=1)
    assert np.isclose(per_pixel.mean(), by_hand(d1))
    with pytest.raises(ValueError):
        evaluate(params, config, g, protocol="stochastic", draws=0)


def test_progress_counts_every_draw_of_the_test_set():
    """progress(done, total) counts images over all draws: total = draws * N, ending at total
    (evaluate.py's bar once stopped at N and then ran past it, "10100/10000")."""
    config = make_config("pixelcnn", hidden=4, n_layers=1, kernel_size=3, height=6, width=6)
    params = get_model(config).init_params(config, np.random.default_rng(1), np.float64)
    g = grey()
    for protocol, draws, expected_total in [("stochastic", 3, 3 * len(g)), ("threshold", 3, len(g))]:
        seen = []
        evaluate(params, config, g, batch_size=3, protocol=protocol, draws=draws,
                 progress=lambda d, t: seen.append((d, t)))
        assert {t for _, t in seen} == {expected_total}
        done = [d for d, _ in seen]
        assert done == sorted(done) and done[-1] == expected_total
