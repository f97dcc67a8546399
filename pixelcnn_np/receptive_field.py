"""Receptive fields: which input pixels the prediction at one pixel actually uses.

The prediction at p = (i, j) is a function of the input image x. How strongly it
depends on each input pixel q is the size of the gradient

    F[q] = | d logit(p) / d x[q] |                  (H, W), one number per input pixel

and the model's own backward pass computes all of it at once: put a one-hot dlogits
(1 at the logit of p, 0 elsewhere) into `backward(dlogits, cache, need_dx=True)`; the
returned grads["x"] is row p of the network's Jacobian, d logit(p) / d x.

For 8-bit models each pixel has 256 logits. `receptive_field` then returns, unless a
`channel` is named, the sum over the 256 logits of |d logit_c(p) / d x| (one backward per
logit, batched): a pixel counts if it moves *any* of the 256 logits.

Two things can make F[q] zero:
* no path joins q to p through the masked kernels: q is outside the receptive field.
  For the plain PixelCNN this includes the *blind spot*, a wedge of earlier pixels above
  and to the right of p that stacked masked kernels never reach;
* a path exists but every path is switched off at this particular input (a ReLU at
  zero, a saturated gate). Random or positive weights and a grey image keep this rare;
  a trained network on a real image can show such "accidental" zeros.

`theoretical_region` is the other half of the picture: every earlier raster position
within the model's *reach*, the bounding region a field of that depth could cover if
it had no blind spot. The plain PixelCNN fills it minus the wedge; the gated model
fills it exactly (for K = 3 and dilations without gaps; see gated.py); with an
attention block it is every earlier pixel, a bound (attention_pixelcnn.py).

Colour (config "channels": 3): the input has three channels, so the field is
(3, H, W), one map per input colour, and `colour=k` picks the logits of colour k at p
(the P numbers that predict R, G or B). Under the sub-pixel masks (colour.py) the
logits of colour k may read every earlier pixel in all three colours and, of p itself,
the colours before k: `theoretical_region(config, i, j, colour=k)` is that (3, H, W) set.

Everything runs in float64, so a gradient of 1e-30 is not mistaken for zero.
"""

import numpy as np

from .colour import image_channels
from .models import get_model


def _as_float64(params):
    return {name: np.asarray(p, dtype=np.float64) for name, p in params.items()}


def receptive_field(params, config, i, j, x=None, channel=None, chunk=32, colour=None):
    """|gradient| of the logit(s) at pixel (i, j) with respect to every input pixel.

    params: the model's parameter dict (any float dtype; computed in float64)
    config: the model's config (its "model" names the forward/backward pair)
    i, j:   the output pixel, 0 <= i < H, 0 <= j < W
    x:      input image (H, W), (c, H, W) or (1, c, H, W) in the network's input scale
            (0/1 binary, value/255 8-bit); default all 0.5 (a grey image)
    channel: which logit at (i, j), of all c_out. None: the only one (grey binary) or
            the sum over all of them of |d logit_c / d x| (8-bit, or colour).
    colour: colour models only: sum over the P logits of colour 0 (R), 1 (G) or 2 (B)
            instead (not together with `channel`).
    chunk:  for a sum over logits, how many logits share one batched forward/backward

    Returns F (H, W) float64, F[a, b] = sum_c | d logit_c(i, j) / d x[a, b] | for a grey
    model; (3, H, W), one map per input colour, for a colour one.

    Method: x is repeated once per logit c in a batch; dlogits is one-hot, 1 at
    (batch n, channel c_n, i, j), so backward's grads["x"][n] = d logit_{c_n}(i, j) / d x.
    """
    H, W = config["height"], config["width"]
    if not (0 <= i < H and 0 <= j < W):
        raise ValueError(f"pixel ({i}, {j}) is outside the {H}x{W} image")
    model = get_model(config)
    c = image_channels(config)
    params = _as_float64(params)
    x = np.full((c, H, W), 0.5) if x is None else np.asarray(x, dtype=np.float64)
    x = x.reshape(1, c, H, W)                                                        # (1, c, H, W)

    c_out = model.out_channels(config)
    if colour is not None:
        if c == 1 or channel is not None or colour not in range(c):
            raise ValueError(f"colour must be 0, 1 or 2, for a colour model and without channel; got {colour!r}")
        per = c_out // c
        channels = list(range(colour * per, (colour + 1) * per))                    # colour k's P logits
    else:
        channels = list(range(c_out)) if channel is None else [channel]
    field = np.zeros((c, H, W))
    for s in range(0, len(channels), chunk):
        batch = channels[s:s + chunk]
        xs = np.repeat(x, len(batch), axis=0)                                        # (B, c, H, W)
        logits, cache = model.forward(params, xs, config)                            # (B, c_out, H, W)
        dlogits = np.zeros_like(logits)
        dlogits[np.arange(len(batch)), batch, i, j] = 1.0                            # one-hot per row
        dx = model.backward(dlogits, cache, need_dx=True)["x"]                       # (B, c, H, W)
        field += np.abs(dx).sum(axis=0)
    return field[0] if c == 1 else field


def reach(config):
    """(rows_up, cols_left, cols_right): how far from p the model's receptive field can
    extend, as the model itself states it (each model module's `reach`; e.g. the plain
    stack's R = F // 2 + (K // 2) * sum of its dilations, each way)."""
    return get_model(config).reach(config)


def theoretical_region(config, i, j, colour=None):
    """(H, W) bool: the earlier raster positions within the model's reach of p = (i, j).

    With (U, L, R) = reach(config):
        rows i - U .. i - 1,  columns j - L .. j + R      (every row above, within reach)
        row i,                columns j - L .. j - 1      (the current row, to the left)
    clipped to the image. The gated model's field is exactly this region (K = 3, no
    dilation gaps); the plain PixelCNN's is this region minus its blind spot.

    colour=k (a colour model): (3, H, W) bool, the sub-pixels before (p, k) within reach:
    that region in each of the three input colours, and p itself in the colours before k.
    """
    H, W = config["height"], config["width"]
    up, left, right = reach(config)
    rows, cols = np.indices((H, W))
    above = (rows >= i - up) & (rows < i) & (cols >= j - left) & (cols <= j + right)
    same_row = (rows == i) & (cols >= j - left) & (cols < j)
    region = above | same_row
    if colour is None:
        return region
    c = image_channels(config)
    if c == 1 or colour not in range(c):
        raise ValueError(f"colour must be 0, 1 or 2, for a colour model; got {colour!r}")
    sub = np.repeat(region[None], c, axis=0)                                         # (3, H, W)
    sub[:colour, i, j] = True                                                        # R_p, G_p before G, B
    return sub


def blind_spot_demo(i, j, extra=None):
    """The comparison the tour and the README draw: [(title, field, region), ...] for a
    small plain PixelCNN and a small Gated PixelCNN (3 layers of 3 x 3 each, at their
    random initial weights: which pixels are reached is fixed by the architecture, not
    by training), plus `extra` = (title, params, config) if given (e.g. the pretrained
    model). Feed the fields and regions to `plots.receptive_field_figure`."""
    from .models import make_config                       # models imports nothing from here
    nets = []
    for title, config in [("plain PixelCNN\n3 layers of 3 x 3 (init)",
                           make_config("pixelcnn", n_layers=2, kernel_size=3, hidden=16)),
                          ("Gated PixelCNN\n3 layers of 3 x 3 (init)",
                           make_config("gated", hidden=8, dilations=[1, 1, 1]))]:
        params = get_model(config).init_params(config, np.random.default_rng(0), np.float64)
        nets.append((title, params, config))
    if extra is not None:
        nets.append(extra)
    return [(title, receptive_field(params, config, i, j), theoretical_region(config, i, j))
            for title, params, config in nets]
