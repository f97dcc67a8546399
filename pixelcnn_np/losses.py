"""Negative log-likelihood losses from logits, each returning the loss and its gradient.

Both losses are averaged over every pixel, so the value is the NLL in **nats per pixel**
(multiply by H*W for nats per image, divide by ln 2 for bits per dimension).

Binary pixels (x in {0, 1}), one logit z per pixel, p(x = 1) = sigmoid(z):

    -log p(x) = softplus(z) - x z,   softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
    d/dz      = sigmoid(z) - x

The right-hand form of softplus never exponentiates a positive number, so any logit
magnitude is safe (z = +-1e4 gives the exact answer, not inf or NaN).

8-bit pixels (x in {0..255}), K = 256 logits per pixel along axis 1:

    -log p(x) = logsumexp(z) - z_x,   logsumexp(z) = m + log sum_k exp(z_k - m), m = max_k z_k
    d/dz_k    = softmax(z)_k - 1[k = x]
"""

import numpy as np
from numba import njit

from . import logistic_mixture
from .activations import sigmoid, softmax
from .validation import check_float_array


def bce_with_logits(logits, targets):
    """Binary cross-entropy, mean over all elements.

    logits (N, 1, H, W) float, targets same shape with values 0/1
    -> loss (float, nats/pixel), dlogits (N, 1, H, W) = (sigmoid(z) - x) / count.
    """
    check_float_array("logits", logits)
    if np.shape(targets) != logits.shape:
        raise ValueError(f"targets must have the shape of logits {logits.shape}, got {np.shape(targets)}")
    x = np.asarray(targets, dtype=logits.dtype)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"targets must lie in [0, 1] (binary pixels), got range [{x.min()}, {x.max()}]")
    z = logits
    softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))    # log(1 + e^z), stable
    count = z.size
    loss = float((softplus - x * z).sum() / count)
    dlogits = (sigmoid(z) - x) / count
    return loss, dlogits.astype(logits.dtype, copy=False)


def _check_softmax_args(logits, targets):
    check_float_array("logits", logits, ndim=4)
    N, K, H, W = logits.shape
    targets = np.asarray(targets)
    if targets.shape != (N, H, W):
        raise ValueError(f"targets must have shape {(N, H, W)}, got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must be integers in [0, {K}), got dtype {targets.dtype}")
    if targets.size and (targets.min() < 0 or targets.max() >= K):
        raise ValueError(f"targets must lie in [0, {K}), got range [{targets.min()}, {targets.max()}]")
    return targets


def softmax_cross_entropy(logits, targets):
    """Categorical cross-entropy over axis 1, mean over the other elements.

    logits (N, K, H, W) float, targets (N, H, W) integers in [0, K)
    -> loss (float, nats/pixel), dlogits (N, K, H, W) = (softmax(z) - onehot(x)) / count.

    The engine: one Numba pass per image over its (K, H W) block of logits, which stays
    in cache (`_softmax_ce_kernel`); `softmax_cross_entropy_reference` is the same in
    NumPy, line by line the equations above.
    """
    targets = _check_softmax_args(logits, targets)
    N, K, H, W = logits.shape
    z = np.ascontiguousarray(logits).reshape(N, K, H * W)
    dlogits = np.empty_like(z)
    nll = _softmax_ce_kernel(z, np.ascontiguousarray(targets.reshape(N, H * W), dtype=np.int64), dlogits,
                             1.0 / max(1, N * H * W))
    return float(nll.sum() / max(1, N * H * W)), dlogits.reshape(N, K, H, W)


@njit(cache=True)
def _softmax_ce_kernel(z, targets, dz, scale):
    """For every image n and position q: nll[n, q] = logsumexp_k z[n, k, q] - z[n, x, q]
    (x = targets[n, q]) and dz[n, :, q] = scale * (softmax(z[n, :, q]) - onehot(x)).

    z, dz (N, K, Q) with Q = H W; targets (N, Q) int64 -> nll (N, Q) float64. Three
    sweeps over k per image (max, sum of exp, the gradient), each along the contiguous
    q axis, so one image's block (256 x 784 float32 = 0.8 MB) is read from cache after
    the first. Sums in float64. Serial: the loss is a small part of a step, and the
    prange habit is kept to the conv engine's own threads."""
    N, K, Q = z.shape
    nll = np.empty((N, Q))
    m = np.empty(Q, dtype=z.dtype)                # the max, in the logits' precision
    s = np.empty(Q)
    for n in range(N):
        for q in range(Q):
            m[q] = z[n, 0, q]
        for k in range(1, K):
            for q in range(Q):
                if z[n, k, q] > m[q]:
                    m[q] = z[n, k, q]
        for q in range(Q):
            s[q] = 0.0
        for k in range(K):                        # e = exp(z - m), kept in dz; s = sum_k e
            for q in range(Q):
                e = np.exp(z[n, k, q] - m[q])
                dz[n, k, q] = e
                s[q] += e
        for q in range(Q):
            s[q] = scale / s[q]                   # from here on: scale / sum_k e
        for k in range(K):
            for q in range(Q):
                dz[n, k, q] *= s[q]
        for q in range(Q):
            x = targets[n, q]
            nll[n, q] = m[q] + np.log(scale / s[q]) - z[n, x, q]
            dz[n, x, q] -= scale
    return nll


def softmax_cross_entropy_reference(logits, targets):
    """NumPy twin of `softmax_cross_entropy` (the equations of the module docstring)."""
    targets = _check_softmax_args(logits, targets)
    N, K, H, W = logits.shape
    m = logits.max(axis=1, keepdims=True)                                   # (N, 1, H, W)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))                  # (N, H, W)
    picked = np.take_along_axis(logits, targets[:, None].astype(np.intp), axis=1)[:, 0]  # (N, H, W)
    count = N * H * W
    loss = float((lse - picked).sum() / count)
    dlogits = softmax(logits, axis=1)                                       # (N, K, H, W)
    np.put_along_axis(dlogits, targets[:, None].astype(np.intp),
                      np.take_along_axis(dlogits, targets[:, None].astype(np.intp), axis=1) - 1, axis=1)
    dlogits /= count
    return loss, dlogits


def per_pixel_nll(logits, targets, pixels, n_mix=None):
    """NLL of every pixel, in nats, without averaging: (N, H, W).
    `pixels` is "binary" (logits (N, 1, H, W)), "8bit" (logits (N, 256, H, W)) or
    "logistic" (logits (N, 3 n_mix, H, W), logistic_mixture.per_pixel_nll)."""
    if pixels == "logistic":
        return logistic_mixture.per_pixel_nll(logits, targets, n_mix)
    if pixels == "binary":
        z = logits[:, 0]
        x = np.asarray(targets, dtype=logits.dtype).reshape(z.shape)
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - x * z
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    picked = np.take_along_axis(logits, np.asarray(targets)[:, None].astype(np.intp), axis=1)[:, 0]
    return lse - picked
