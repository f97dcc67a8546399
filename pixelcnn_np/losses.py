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


def softmax_cross_entropy(logits, targets):
    """Categorical cross-entropy over axis 1, mean over the other elements.

    logits (N, K, H, W) float, targets (N, H, W) integers in [0, K)
    -> loss (float, nats/pixel), dlogits (N, K, H, W) = (softmax(z) - onehot(x)) / count.
    """
    check_float_array("logits", logits, ndim=4)
    N, K, H, W = logits.shape
    targets = np.asarray(targets)
    if targets.shape != (N, H, W):
        raise ValueError(f"targets must have shape {(N, H, W)}, got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must be integers in [0, {K}), got dtype {targets.dtype}")
    if targets.size and (targets.min() < 0 or targets.max() >= K):
        raise ValueError(f"targets must lie in [0, {K}), got range [{targets.min()}, {targets.max()}]")
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
