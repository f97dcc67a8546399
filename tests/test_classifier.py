"""The softmax-regression judge of conditional samples: its gradient, and a fit that works."""

import numpy as np
import pytest

from gradcheck import check_directional, check_elementwise
from pixelcnn_np.classifier import (
    fit_mlp, fit_softmax_regression, knn_predict, mlp_forward, mlp_init, mlp_loss, mlp_predict, predict, recenter,
    softmax_regression_loss,
)


def test_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, size=12)
    theta = rng.standard_normal(5 * 3 + 3)
    _, grad = softmax_regression_loss(theta, X, y, 3, 0.1)
    f = lambda t: softmax_regression_loss(t, X, y, 3, 0.1)[0]        # noqa: E731
    check_elementwise(f, theta, grad)
    check_directional(f, theta, grad, rng)


def test_fit_separates_three_blobs_and_predicts_held_out_points():
    """Three well-separated Gaussian blobs: held-out accuracy >= 95% (Bayes: ~99%); the
    control is a shuffled-label fit, which must do no better than chance on held-out points."""
    rng = np.random.default_rng(1)
    centres = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    y = rng.integers(0, 3, size=300)
    X = centres[y] + rng.standard_normal((300, 4))
    W, b = fit_softmax_regression(X[:200], y[:200], n_classes=3)
    assert (predict(W, b, X[200:]) == y[200:]).mean() >= 0.95
    W, b = fit_softmax_regression(X[:200], rng.permutation(y[:200]), n_classes=3)
    assert (predict(W, b, X[200:]) == y[200:]).mean() < 0.6


def test_knn_equals_a_loop_and_reads_blobs():
    rng = np.random.default_rng(2)
    centres = np.array([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    y = rng.integers(0, 3, size=200)
    X = centres[y] + rng.standard_normal((200, 3))
    got = knn_predict(X[:150], y[:150], X[150:], k=3, n_classes=3, block=7)
    for i, x in enumerate(X[150:]):                       # the obvious loop
        nearest = np.argsort(((X[:150] - x) ** 2).sum(axis=1))[:3]
        assert got[i] == np.bincount(y[:150][nearest], minlength=3).argmax()
    assert (got == y[150:]).mean() >= 0.95
    shuffled = knn_predict(X[:150], rng.permutation(y[:150]), X[150:], k=3, n_classes=3)
    assert (shuffled == y[150:]).mean() < 0.6             # control: labels that mean nothing


def test_mlp_gradients_match_finite_differences_with_a_negative_control():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((9, 5)), rng.integers(0, 4, size=9)
    params = mlp_init(5, 6, 4, rng, dtype=np.float64)
    params["b1"] = rng.standard_normal(6)                 # some units on, some off
    _, grads = mlp_loss(params, X, y)
    for name in params:
        def f(v, name=name):
            return mlp_loss({**params, name: v}, X, y)[0]
        check_elementwise(f, params[name], grads[name])
        check_directional(f, params[name], grads[name], rng)
    wrong = grads["W1"] * (rng.random(grads["W1"].shape) > 0.2)          # control: drop a fifth of it
    with pytest.raises(AssertionError):
        check_elementwise(lambda v: mlp_loss({**params, "W1": v}, X, y)[0], params["W1"], wrong)


def test_mlp_fits_blobs_and_not_shuffled_labels():
    rng = np.random.default_rng(4)
    centres = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    y = rng.integers(0, 3, size=600)
    X = centres[y] + rng.standard_normal((600, 4))
    params = fit_mlp(X[:400], y[:400], n_classes=3, hidden=16, epochs=6, batch_size=32, lr=1e-2)
    assert (mlp_predict(params, X[400:]) == y[400:]).mean() >= 0.95
    assert mlp_forward(params, X[:2].astype(np.float32))[0].shape == (2, 3)
    params = fit_mlp(X[:400], rng.permutation(y[:400]), n_classes=3, hidden=16, epochs=6, batch_size=32, lr=1e-2)
    assert (mlp_predict(params, X[400:]) == y[400:]).mean() < 0.6


def test_recenter_moves_the_centre_of_mass_to_the_middle():
    img = np.zeros((3, 28, 28), np.uint8)
    img[0, 2:6, 3:5] = 1                               # a blob top-left: centre (3.5, 3.5)
    img[1, 10:19, 12:17] = 1                           # already central: centre (14, 14)
    out = recenter(img)
    r, c = np.nonzero(out[0])
    assert (r.mean(), c.mean()) == (13.5, 13.5)        # moved by round(10.5) = 10 rows and columns
    assert out[0].sum() == img[0].sum()
    np.testing.assert_array_equal(out[1], img[1])
    np.testing.assert_array_equal(out[2], img[2])      # a blank image stays blank
    edge = np.zeros((1, 28, 28), np.uint8)
    edge[0, :, 27] = 1                                 # a line on the right edge, and one pixel far left
    edge[0, 0, 0] = 1                                  # centre (378 / 29, 756 / 29) = (13.03, 26.07)
    moved = recenter(edge)[0]                          # shift 1 down, 12 left
    assert moved.sum() == edge.sum() - 2               # out: the far-left pixel and the line's last one
    np.testing.assert_array_equal(moved[1:, 15], 1)
    with pytest.raises(ValueError, match="N, H, W"):
        recenter(np.zeros((28, 28)))
