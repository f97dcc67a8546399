"""Digit classifiers to judge class-conditional samples: softmax regression and k-NN, by hand.

"Are the samples of the model conditioned on 3 really 3s?" needs a judge that is not the
model itself. The simplest honest one is multinomial logistic regression on the pixels,
fitted here with scipy.optimize (L-BFGS) on the binarized MNIST training set; it scores
about 92% on the test set, far from perfect, so it is reported next to every judgement.

    z = X W + b                          X (N, D) pixels, W (D, K), b (K,) -> logits (N, K)
    loss = mean_n [ logsumexp(z_n) - z_n[y_n] ] + (lam / 2) ||W||^2
    dz = (softmax(z) - onehot(y)) / N    dW = X^T dz + lam W      db = sum_n dz_n

(The same softmax cross-entropy as the 256-way pixel head in losses.py, on (N, K).)

A linear judge reads slanted or thin strokes poorly, so a second, non-linear one votes too:
k nearest neighbours in pixel space (Euclidean), about 95% on the binarized test digits:

    ||x - t||^2 = ||x||^2 - 2 x.t + ||t||^2        (one BLAS product for a block of queries)
    label(x) = the most frequent label among the k nearest training images (ties: the smaller digit)
"""

import numpy as np
from scipy.optimize import minimize

from .activations import softmax


def softmax_regression_loss(theta, X, y, n_classes, l2):
    """Loss and gradient for scipy: theta = [W.ravel(), b] (float64) -> (float, (D*K + K,))."""
    N, D = X.shape
    W = theta[:D * n_classes].reshape(D, n_classes)
    b = theta[D * n_classes:]
    z = X @ W + b                                                  # (N, K)
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))        # log-sum-exp, stable
    loss = float(np.mean(lse - z[np.arange(N), y]) + 0.5 * l2 * np.sum(W * W))
    dz = softmax(z, axis=1)
    dz[np.arange(N), y] -= 1.0
    dz /= N                                                        # (N, K)
    dW = X.T @ dz + l2 * W                                         # (D, K)
    db = dz.sum(axis=0)                                            # (K,)
    return loss, np.concatenate([dW.ravel(), db])


def fit_softmax_regression(X, y, n_classes=10, l2=1e-4, max_iter=300):
    """Fit W (D, K), b (K,) by L-BFGS. X (N, D) float, y (N,) ints in 0..K-1."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and y (N,), got {X.shape} and {y.shape}")
    D = X.shape[1]
    theta0 = np.zeros(D * n_classes + n_classes)
    result = minimize(softmax_regression_loss, theta0, args=(X, y, n_classes, l2), jac=True,
                      method="L-BFGS-B", options={"maxiter": max_iter})
    return result.x[:D * n_classes].reshape(D, n_classes), result.x[D * n_classes:]


def predict(W, b, X):
    """The most likely class of each row of X (N, D) -> (N,) ints."""
    return np.argmax(np.asarray(X, dtype=np.float64) @ W + b, axis=1)


def knn_predict(X_train, y_train, X, k=3, n_classes=10, block=500):
    """Majority label of the k nearest rows of X_train (N, D) for each row of X (M, D) -> (M,)."""
    X_train = np.asarray(X_train, dtype=np.float32)
    X = np.asarray(X, dtype=np.float32)
    if X_train.ndim != 2 or X.ndim != 2 or X.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_train (N, D) and X (M, D) must share D, got {X_train.shape} and {X.shape}")
    if not 1 <= k <= len(X_train):
        raise ValueError(f"k must lie in 1..{len(X_train)}, got {k}")
    t2 = (X_train * X_train).sum(axis=1)                                   # (N,)
    out = np.empty(len(X), dtype=np.int64)
    for s in range(0, len(X), block):
        q = X[s:s + block]                                                  # (B, D)
        d2 = (q * q).sum(axis=1)[:, None] - 2 * (q @ X_train.T) + t2       # (B, N)
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]                 # (B, k), unordered
        votes = np.zeros((len(q), n_classes), dtype=np.int64)
        np.add.at(votes, (np.arange(len(q))[:, None], np.asarray(y_train)[nearest]), 1)
        out[s:s + block] = votes.argmax(axis=1)
    return out
