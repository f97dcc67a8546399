"""Raster-scan sampling: draw pixels one at a time, each from p(x_p | x_<p).

    for p in raster order:
        logits = forward(params, x)            # the whole network, every pixel
        x_p ~ p(x_p | x_<p)                   # from the logits at p only

The naive loop below runs the full network once per pixel (H * W forward passes).
It is the readable reference every faster sampler must match draw for draw.

The cached sampler (Ramachandran et al., 2017, "Fast Generation for Convolutional
Autoregressive Models") computes each layer *only at the pixel being sampled*: with
masks A and B, a hidden activation at p depends only on pixels before p, so it can be
computed once, from the cached activations of the layer below, right before x_p is
drawn. Each model provides three functions for this (`sampler_init`,
`sampler_logits(params, state, x, i, j, config)` and `sampler_row_done`, for stacks
such as the gated model's vertical one, which can only run once a row is complete).

Both samplers compute in float64 by default, so that the logits they feed the same
uniform draws agree to ~1e-16 and the images are identical (a pixel could only differ
if a draw u fell within that rounding distance of its threshold).

A class-conditional model samples p(x | y): pass `labels` (n,), the digit each image
should be; they enter every layer as a bias and are fixed for the whole raster scan.

Randomness: at each pixel, one uniform u ~ U[0, 1) per image, drawn as
`rng.random(n)`, in raster order. A binary pixel is 1 when u < sigmoid(z / T); an
8-bit pixel is the smallest k with u < CDF(k) of softmax(z / T) (inverse-CDF
sampling). Temperature T < 1 sharpens the distribution, T > 1 flattens it.

Colour (colour.py): each pixel is three draws, R, then G, then B, one uniform per image
each; before each the network is run again (naive: the whole network; cached: every
layer at (i, j)), so G's logits see the R just drawn and B's see R and G. The images are
(n, 3, H, W), and a completion's `start` counts whole pixels.
"""

import numpy as np

from . import logistic_mixture
from .activations import sigmoid, softmax
from .conditioning import check_labels
from .colour import image_channels
from .models import get_model, image_shape, model_input


def draw_pixel(logits_p, u, pixels, temperature, n_mix=None):
    """One pixel per image from its logits at position p.
    logits_p (n, c_out), u (n,) uniforms -> values (n,) uint8. A logistic mixture's 256
    probabilities are reweighted as p^(1/T) (what softmax(z / T) does to the softmax's)."""
    if pixels == "logistic":
        return logistic_mixture.draw_pixel(logits_p, u, n_mix, temperature)
    z = logits_p.astype(np.float64) / temperature
    if pixels == "binary":
        return (u < sigmoid(z[:, 0])).astype(np.uint8)
    cdf = np.cumsum(softmax(z, axis=1), axis=1)                  # (n, 256)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), 255).astype(np.uint8)


def _prepare(params, config, n, temperature, images, start, dtype):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    H, W = config["height"], config["width"]
    if not 0 <= start <= H * W:
        raise ValueError(f"start must lie in [0, {H * W}], got {start}")
    shape = (n,) + image_shape(config)                    # (n, H, W) or (n, 3, H, W)
    if images is None:
        out = np.zeros(shape, dtype=np.uint8)
    else:
        out = np.array(images, dtype=np.uint8)
        if out.shape != shape:
            raise ValueError(f"images must have shape {shape}, got {out.shape}")
        out.reshape(n, -1, H * W)[:, :, start:] = 0       # nothing after `start` may leak in
    return {k: np.asarray(v, dtype=dtype) for k, v in params.items()}, out


def _pixel_view(out):
    """(n, H, W) grey or (n, 3, H, W) colour uint8 -> a (n, c, H, W) view of it."""
    return out[:, None] if out.ndim == 3 else out


def sample(params, config, n, rng, method="cached", **kwargs):
    """Sample n images with `method` "cached" (fast) or "naive" (the reference)."""
    if method == "cached":
        return sample_cached(params, config, n, rng, **kwargs)
    if method == "naive":
        return sample_naive(params, config, n, rng, **kwargs)
    raise ValueError(f"method must be 'cached' or 'naive', got {method!r}")


def sample_cached(params, config, n, rng, temperature=1.0, progress=None, images=None, start=0,
                  dtype=np.float64, labels=None):
    """Sample n images (n, H, W) uint8 ((n, 3, H, W) colour), computing each layer only
    where needed. Same arguments, same random draws and same result as `sample_naive`."""
    model = get_model(config)
    H, W = config["height"], config["width"]
    c = image_channels(config)
    params, out = _prepare(params, config, n, temperature, images, start, dtype)
    labels = check_labels(labels, n, config)
    pix = _pixel_view(out)                                        # (n, c, H, W) view of out
    x = model_input(pix, config, dtype)                           # (n, c, H, W), updated in place
    state = model.sampler_init(params, config, n, dtype, labels=labels)
    for p in range(H * W):
        i, j = divmod(p, W)
        for k in range(c if p >= start else 1):                  # R, G, B in turn (grey: once)
            logits = model.sampler_logits(params, state, x, i, j, config)   # (n, c_out)
            if p >= start:
                per = logits.shape[1] // c
                u = rng.random(n)
                pix[:, k, i, j] = draw_pixel(logits[:, k * per:(k + 1) * per], u, config["pixels"],
                                             temperature, config.get("n_mix"))
                x[:, k, i, j] = model_input(pix[:, k:k + 1, i:i + 1, j], config, dtype)[:, 0, 0, 0]
        if p >= start and progress is not None:
            progress(p + 1 - start, H * W - start)
        if j == W - 1:
            model.sampler_row_done(params, state, x, i, config)
    return out


def sample_naive(params, config, n, rng, temperature=1.0, progress=None, images=None, start=0,
                 dtype=np.float64, labels=None):
    """Sample n images (n, H, W) uint8 ((n, 3, H, W) colour) by the naive raster loop.

    images/start: optional (n, H, W) images whose first `start` raster positions are
    kept (completion); the rest is sampled. `progress(done, total)` is called per pixel.
    labels: (n,) the class of each image, for a class-conditional model only.
    """
    model = get_model(config)
    H, W = config["height"], config["width"]
    c = image_channels(config)
    params, out = _prepare(params, config, n, temperature, images, start, dtype)
    labels = check_labels(labels, n, config)
    pix = _pixel_view(out)                                        # (n, c, H, W) view of out
    for p in range(start, H * W):
        i, j = divmod(p, W)
        for k in range(c):                                        # R, G, B in turn (grey: once)
            x = model_input(pix, config, dtype)                   # (n, c, H, W)
            logits, _ = model.forward(params, x, config, labels=labels)   # (n, c_out, H, W)
            per = logits.shape[1] // c
            u = rng.random(n)
            pix[:, k, i, j] = draw_pixel(logits[:, k * per:(k + 1) * per, i, j], u, config["pixels"],
                                         temperature, config.get("n_mix"))
        if progress is not None:
            progress(p + 1 - start, H * W - start)
    return out
