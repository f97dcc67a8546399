"""The softmax-regression judge of conditional samples: its gradient, and a fit that works."""

import numpy as np

from gradcheck import check_directional, check_elementwise
from pixelcnn_np.classifier import fit_softmax_regression, knn_predict, predict, softmax_regression_loss


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
