"""Class conditioning: a label y adds a learned bias, one per channel, to a pre-activation.

The conditional PixelCNN (van den Oord et al., 2016, "Conditional Image Generation with
PixelCNN Decoders") models p(x | y) = prod_p p(x_p | x_<p, y). With a one-hot label
h = onehot(y), every gated (or ReLU) pre-activation gets a term V^T h:

    a[n, c, i, j] = conv(x)[n, c, i, j] + V[c, y_n]          V (C, n_classes)

The same bias at every position (i, j): the label says *what* to draw, not *where*, so
it may influence every pixel without breaking the autoregressive order (it is not a
pixel). Its gradient sums the upstream gradient over positions, per image, into the
column of that image's label:

    dV[c, k] = sum_{n: y_n = k} sum_{i, j} da[n, c, i, j]     i.e.  dV = (sum_ij da)^T onehot(y)

A config with `n_classes` > 0 makes a model conditional; its `forward` and the samplers
then take `labels` (N,) integers in 0..n_classes-1. Unconditional configs have no
`n_classes` key (or 0) and take no labels.
"""

import numpy as np


def n_classes(config):
    """Labels the model is conditioned on (0: unconditional)."""
    return int(config.get("n_classes", 0) or 0)


def check_labels(labels, n, config):
    """Labels must be given exactly when the model is conditional: (n,) integers in range.
    Returns them as an int64 array (or None for an unconditional model)."""
    k = n_classes(config)
    if k == 0:
        if labels is not None:
            raise ValueError("labels were given but this model is unconditional "
                             "(train it with n_classes > 0, e.g. --conditional)")
        return None
    if labels is None:
        raise ValueError(f"this model is class-conditional ({k} classes): pass labels, one per image")
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per image, got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}, got values from {labels.min()} to {labels.max()}")
    return labels.astype(np.int64)


def label_bias_forward(labels, V):
    """The per-image, per-channel bias V[:, y_n]: labels (N,), V (C, K) -> (N, C, 1, 1).
    Add it to a pre-activation (N, C, H, W); it broadcasts over H, W."""
    bias = V[:, labels].T                              # (N, C)
    return bias[:, :, None, None], (labels, V.shape)


def label_bias_backward(da, cache):
    """da (N, C, H, W), the gradient at the pre-activation the bias was added to -> dV (C, K)."""
    labels, shape = cache
    per_image = da.sum(axis=(2, 3))                    # (N, C): the bias is the same at every (i, j)
    dV = np.zeros(shape, dtype=da.dtype)
    np.add.at(dV.T, labels, per_image)                 # dV[:, y_n] += per_image[n], repeats summed
    return dV
