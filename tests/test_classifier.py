"""The softmax-regression judge of conditional samples: its gradient, and a fit that works."""

import numpy as np

from gradcheck import check_directional, check_elementwise
from pixelcnn_np.classifier import fit_softmax_regression, predict, softmax_regression_loss


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
