"""Raster-scan sampling: draw pixels one at a time, each from p(x_p | x_<p).

    for p in raster order:
        logits = forward(params, x)            # the whole network, every pixel
        x_p ~ p(x_p | x_<p)                   # from the logits at p only

The naive loop below runs the full network once per pixel (H * W forward passes).
It is the readable reference every faster sampler must match draw for draw.

Randomness: at each pixel, one uniform u ~ U[0, 1) per image, drawn as
`rng.random(n)`, in raster order. A binary pixel is 1 when u < sigmoid(z / T); an
8-bit pixel is the smallest k with u < CDF(k) of softmax(z / T) (inverse-CDF
sampling). Temperature T < 1 sharpens the distribution, T > 1 flattens it.
"""

import numpy as np

from .activations import sigmoid, softmax
from .models import get_model, model_input


def draw_pixel(logits_p, u, pixels, temperature):
    """One pixel per image from its logits at position p.
    logits_p (n, c_out), u (n,) uniforms -> values (n,) uint8."""
    z = logits_p.astype(np.float64) / temperature
    if pixels == "binary":
        return (u < sigmoid(z[:, 0])).astype(np.uint8)
    cdf = np.cumsum(softmax(z, axis=1), axis=1)                  # (n, 256)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), 255).astype(np.uint8)


def sample_naive(params, config, n, rng, temperature=1.0, progress=None, images=None, start=0):
    """Sample n images (n, H, W) uint8 by the naive raster loop.

    images/start: optional (n, H, W) images whose first `start` raster positions are
    kept (completion); the rest is sampled. `progress(done, total)` is called per pixel.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    model = get_model(config)
    H, W = config["height"], config["width"]
    dtype = next(iter(params.values())).dtype
    out = np.zeros((n, H, W), dtype=np.uint8) if images is None else np.array(images, dtype=np.uint8)
    for p in range(start, H * W):
        i, j = divmod(p, W)
        x = model_input(out, config, dtype)                       # (n, 1, H, W)
        logits, _ = model.forward(params, x, config)              # (n, c_out, H, W)
        u = rng.random(n)
        out[:, i, j] = draw_pixel(logits[:, :, i, j], u, config["pixels"], temperature)
        if progress is not None:
            progress(p + 1 - start, H * W - start)
    return out
