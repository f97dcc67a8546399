"""Colour images: one pixel is three numbers, predicted R, then G, then B.

A grey PixelCNN factorises an image over its pixels in raster order. A colour image
(N, 3, H, W) has three sub-pixels per pixel, and PixelRNN (van den Oord et al., 2016a,
section 3.4) orders them too:

    p(x) = prod_p  p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p)

so the network's R output at p may read every earlier pixel but nothing of p, its G
output also R_p, and its B output also R_p and G_p. Every layer's channels are split
into an R, a G and a B group (`masks.channel_groups`: contiguous thirds), and at the
centre tap, the one tap that reads the pixel being written, a layer lets group g read
the groups before g (mask A, the first layer) or up to and including g (mask B, every
later layer, 1x1 convolutions too): `masks.subpixel_mask`, an (O, C, K, K) mask.

This module holds what every model shares for it:

* `subpixel_conv2d_forward` / `subpixel_conv2d_backward`: a convolution under an
  (O, C, K, K) mask M. Forward is the correlation with w * M (conv.py's engine, over
  the taps M keeps anywhere); backward masks dw by M, so a masked weight gets no
  gradient and stays zero under Adam:

      y = conv(x, w * M) + b        dw = M * dw_conv        dx = conv^T(dy, w * M)

  With one group (a grey image) M is the grey causal mask and this is exactly
  `conv.conv2d_forward`; the models use it for grey and colour alike.
* `layer_mask(config, spatial, mask_type, out_channels, in_channels, ...)`: the mask of
  one layer of a model whose config says how many image channels it has.
* `split_subpixels`: the head's logits (N, 3 P, H, W) as (N, 3, P, H, W), P per colour
  (1 Bernoulli logit, 256 softmax logits, or 3 K mixture numbers), in the order of the
  groups: the first P channels predict R, the next G, the last B.
"""

import functools
import json

import numpy as np

from .conv import conv2d_backward, conv2d_forward
from .masks import channel_groups, subpixel_mask

# Image channels a model may have: 1 (grey) or 3 (RGB).
IMAGE_CHANNELS = (1, 3)


def image_channels(config):
    """1 for a grey model, 3 for a colour one (config["channels"], present only when 3)."""
    return config.get("channels", 1)


def layer_mask(config, spatial, mask_type, out_channels, in_channels, out_groups=None):
    """(O, C, K, K) mask of one layer of the config's model: `spatial` (K, K) the grey
    mask, its centre decided by the channel groups (masks.subpixel_mask). out_groups
    overrides the output channels' groups (the gated layers' 2h outputs are two h-channel
    halves that pair channel c with c + h, so both halves repeat the h-channel groups)."""
    g = image_channels(config)
    if out_groups is None:
        out_groups = channel_groups(out_channels, g)
    return subpixel_mask(spatial, mask_type, out_groups, channel_groups(in_channels, g))


def masks_per_config(masks_of):
    """Decorator for a model's `masks(config)`: the masks are computed once per config
    (a seed-net layer's mask is 200k numbers) and handed out read-only."""
    @functools.lru_cache(maxsize=32)
    def from_key(key):
        masks = masks_of(json.loads(key))
        for m in masks.values():
            m.flags.writeable = False
        return masks

    @functools.wraps(masks_of)
    def masks(config):
        return from_key(json.dumps(config, sort_keys=True))
    masks.cache_clear = from_key.cache_clear                          # for tests that patch a mask
    return masks


def subpixel_conv2d_forward(x, w, b, mask, dilation=1):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,), mask (O, C, KH, KW) of 0/1
    -> y (N, O, H, W), cache.    y = correlation of x with w * mask, plus b.

    When every (o, c) keeps the same taps (a grey layer), the product is left to the
    engine, which reads only those taps of w anyway: no copy of w is made."""
    if np.shape(mask) != w.shape:
        raise ValueError(f"mask must have the shape of w {w.shape}, got {np.shape(mask)}")
    spatial = mask.any(axis=(0, 1))                                   # (KH, KW): taps kept for some (o, c)
    per_channel = not (mask == spatial).all()                         # colour: the centre tap differs by (o, c)
    if per_channel:
        w = w * mask.astype(w.dtype)
    y, cache = conv2d_forward(x, w, b, spatial, dilation, check_finite=False)
    return y, (cache, mask if per_channel else None)


def subpixel_conv2d_backward(dy, cache, need_dx=True):
    """dy (N, O, H, W) -> (dx, dw, db); dw is zero wherever mask is (the engine already
    leaves the taps outside `spatial` at zero; a colour mask also zeroes its centre's)."""
    conv_cache, mask = cache
    dx, dw, db = conv2d_backward(dy, conv_cache, need_dx=need_dx, check_finite=False)
    if mask is not None:
        dw *= mask.astype(dw.dtype)
    return dx, dw, db


def split_subpixels(a, channels):
    """(N, channels * P, H, W) -> (N, channels, P, H, W): per colour, its P numbers (a view)."""
    N, O, H, W = a.shape
    return a.reshape(N, channels, O // channels, H, W)
