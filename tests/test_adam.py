"""Tests for pixelcnn_np.adam: two steps worked out by hand, purity, parameters whose
gradient is zero, and argument checks."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelcnn_np.adam import adam_init, adam_step

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-8


def test_two_steps_by_hand():
    """w = [1, -2] with gradients g1 = [0.5, -1] then g2 = [-0.25, 3], lr = 0.1.

    Each element is worked out below in plain Python floats, one equation a line:

        m_t = b1 m_{t-1} + (1 - b1) g_t          m_hat = m_t / (1 - b1^t)
        v_t = b2 v_{t-1} + (1 - b2) g_t^2        v_hat = v_t / (1 - b2^t)
        w_t = w_{t-1} - lr m_hat / (sqrt(v_hat) + eps)
    """
    params = {"w": np.array([1.0, -2.0])}
    state = adam_init(params)
    params, state = adam_step(params, {"w": np.array([0.5, -1.0])}, state, LR, B1, B2, EPS)
    params, state = adam_step(params, {"w": np.array([-0.25, 3.0])}, state, LR, B1, B2, EPS)

    # ---- element 0: w = 1.0, g1 = 0.5, g2 = -0.25 ----
    # step 1
    m = (1 - B1) * 0.5                        # 0.1 * 0.5          = 0.05
    v = (1 - B2) * 0.5 ** 2                   # 0.001 * 0.25       = 0.00025
    m_hat = m / (1 - B1)                      # 0.05 / 0.1         = 0.5   (= g1: no bias left)
    v_hat = v / (1 - B2)                      # 0.00025 / 0.001    = 0.25  (= g1^2)
    w0 = 1.0 - LR * m_hat / (math.sqrt(v_hat) + EPS)     # 1 - 0.1 * 0.5 / 0.5 = 0.9 (+ 2e-9 from eps)
    assert (m, v, m_hat, v_hat) == pytest.approx((0.05, 0.00025, 0.5, 0.25), rel=1e-12)
    assert w0 == pytest.approx(0.900000002, rel=1e-12)
    # step 2
    m = B1 * m + (1 - B1) * -0.25             # 0.045 - 0.025      = 0.02
    v = B2 * v + (1 - B2) * (-0.25) ** 2      # 0.00024975 + 0.0000625 = 0.00031225
    m_hat = m / (1 - B1 ** 2)                 # 0.02 / 0.19        = 0.105263...
    v_hat = v / (1 - B2 ** 2)                 # 0.00031225 / 0.001999 = 0.156203...
    w0 = w0 - LR * m_hat / (math.sqrt(v_hat) + EPS)      # 0.9 - 0.1 * 0.105263 / 0.395225
    m0, v0 = m, v
    assert (m, v, m_hat, v_hat) == pytest.approx((0.02, 0.00031225, 0.10526315789, 0.15620310155), rel=1e-9)
    assert w0 == pytest.approx(0.87336629871, rel=1e-10)

    # ---- element 1: w = -2.0, g1 = -1.0, g2 = 3.0 ----
    # step 1: the first step always has size lr in every coordinate (m_hat / sqrt(v_hat) = sign(g))
    m = (1 - B1) * -1.0                       # -0.1
    v = (1 - B2) * 1.0                        # 0.001
    m_hat = m / (1 - B1)                      # -1
    v_hat = v / (1 - B2)                      # 1
    w1 = -2.0 - LR * m_hat / (math.sqrt(v_hat) + EPS)    # -2 + 0.1 = -1.9 (- 1e-9 from eps)
    assert w1 == pytest.approx(-1.900000001, rel=1e-12)
    # step 2
    m = B1 * m + (1 - B1) * 3.0               # -0.09 + 0.3        = 0.21
    v = B2 * v + (1 - B2) * 3.0 ** 2          # 0.000999 + 0.009   = 0.009999
    m_hat = m / (1 - B1 ** 2)                 # 0.21 / 0.19        = 1.105263...
    v_hat = v / (1 - B2 ** 2)                 # 0.009999 / 0.001999 = 5.002001...
    w1 = w1 - LR * m_hat / (math.sqrt(v_hat) + EPS)      # -1.9 - 0.1 * 1.105263 / 2.236515
    m1, v1 = m, v
    assert (m, v, m_hat, v_hat) == pytest.approx((0.21, 0.009999, 1.10526315789, 5.0020010005), rel=1e-9)
    assert w1 == pytest.approx(-1.94941898411, rel=1e-10)

    # ---- the library agrees ----
    np.testing.assert_allclose(params["w"], [w0, w1], rtol=1e-14)
    np.testing.assert_allclose(state["m"]["w"], [m0, m1], rtol=1e-14)
    np.testing.assert_allclose(state["v"]["w"], [v0, v1], rtol=1e-14)
    assert state["t"] == 2


def test_init_is_zero_with_matching_shapes_and_dtypes():
    params = {"a": np.ones((2, 3), dtype=np.float32), "b": np.ones(4)}
    state = adam_init(params)
    assert state["t"] == 0
    for k, p in params.items():
        for moment in ("m", "v"):
            assert state[moment][k].shape == p.shape
            assert state[moment][k].dtype == p.dtype
            assert not state[moment][k].any()


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_step_is_pure(seed, dtype):
    """adam_step returns new dicts and arrays; the inputs are untouched."""
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 2)).astype(dtype), "b": rng.standard_normal(2).astype(dtype)}
    grads = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}
    state = adam_init(params)
    params, state = adam_step(params, grads, state, lr=0.01)         # one step: non-zero moments
    before = ({k: p.copy() for k, p in params.items()}, {k: g.copy() for k, g in grads.items()},
              state["t"], {k: m.copy() for k, m in state["m"].items()},
              {k: v.copy() for k, v in state["v"].items()})

    new_params, new_state = adam_step(params, grads, state, lr=0.01)

    for k in params:
        np.testing.assert_array_equal(params[k], before[0][k])
        np.testing.assert_array_equal(grads[k], before[1][k])
        np.testing.assert_array_equal(state["m"][k], before[3][k])
        np.testing.assert_array_equal(state["v"][k], before[4][k])
        assert new_params[k] is not params[k]
        assert new_state["m"][k] is not state["m"][k]
        assert new_params[k].dtype == dtype and new_state["m"][k].dtype == dtype
        assert not np.array_equal(new_params[k], params[k])
    assert state["t"] == before[2] and new_state["t"] == before[2] + 1


def test_zero_gradient_entries_never_move():
    """Masked taps get gradient exactly 0 forever: m = v = 0, the step is 0 / (0 + eps) = 0."""
    rng = np.random.default_rng(0)
    mask = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    params = {"w": rng.standard_normal((2, 3)) * mask, "frozen": rng.standard_normal(4)}
    start = {k: p.copy() for k, p in params.items()}
    state = adam_init(params)
    for _ in range(5):
        grads = {"w": rng.standard_normal((2, 3)) * mask, "frozen": np.zeros(4)}
        params, state = adam_step(params, grads, state, lr=0.1)
    assert np.all(params["w"][mask == 0] == 0)
    assert np.all(params["w"][mask == 1] != start["w"][mask == 1])
    np.testing.assert_array_equal(params["frozen"], start["frozen"])


def test_missing_gradient_is_an_error():
    params = {"a": np.zeros(2), "b": np.zeros(3)}
    with pytest.raises(ValueError, match=r"no gradient for parameter\(s\): \['b'\]"):
        adam_step(params, {"a": np.zeros(2)}, adam_init(params), lr=0.1)


def test_gradient_of_the_wrong_shape_is_an_error():
    params = {"a": np.zeros((2, 3))}
    with pytest.raises(ValueError, match=r"gradient for 'a' has shape \(3, 2\), parameter has \(2, 3\)"):
        adam_step(params, {"a": np.zeros((3, 2))}, adam_init(params), lr=0.1)
