"""A PixelCNN whose mask-B convolutions are dilated: the plain stack, reaching further.

    x (N, 1, H, W)
    -> conv0: F x F mask-A conv, 1 -> h channels, dilation 1   -> ReLU    sees x_<p
    -> conv_l (l = 1..L): K x K mask-B conv, h -> h, dilation d_l -> ReLU  still only x_<p
    -> out: 1 x 1 conv, h -> 1 logit (binary) or 256 logits (8-bit) per pixel

A dilated tap (ky, kx) reads the input d (ky - r), d (kx - r) pixels away (r = K // 2,
see `conv.py`), so a 3x3 kernel with dilation d covers a (2d + 1) x (2d + 1) window
with 9 weights. Dilation does not touch the mask: it only spreads the *kept* taps
apart, so the output at p still reads hidden positions <= p and x_<p only.

Defaults: F = 7, K = 3, h = 64, dilations 1, 2, 4, 8, 1, 2 (L = 6). Parameters, one
flat dict: "conv0.w" (h, 1, F, F), "conv0.b" (h,), "conv{l}.w" (h, h, K, K),
"conv{l}.b" (h,), "out.w" (c_out, h, 1, 1), "out.b" (c_out,).

Receptive field
---------------
Write an offset as (u rows up, v columns right): x[i - u, j + v] for output p = (i, j),
r0 = F // 2 and r = K // 2. Layer 0 reads the offsets

    A   = {(u, v): 1 <= u <= r0, |v| <= r0}  U  {(0, v): -r0 <= v <= -1}
    B_l = {(d_l k, d_l m): 1 <= k <= r, |m| <= r}  U  {(0, d_l m): -r <= m <= 0}

for mask-B layer l. Composing layers adds offsets, so the logit at p depends on x at
exactly the offsets of the Minkowski sum A + B_1 + ... + B_L (away from the image
border, where zero padding cuts paths; ReLUs and the 1x1 head change nothing). Its
extent, with R = r0 + r * sum_l d_l:

    rows above               R = F // 2 + (K // 2) * sum_l d_l     (defaults: 3 + 18 = 21)
    columns to the left      R, in row i and in the rows above
    columns to the right     u rows up: min(r0 + r (u - 1), R)      (defaults: min(u + 2, 21))

(farthest pixels; the last line for F >= K, as in the defaults). The right edge is the
*blind spot*: the first layer moves at most r0 columns right, and only by moving up a
row; every later layer moves at most r columns right per row it moves up. So the wedge
of earlier pixels above p and right of that diagonal is never reached: one row above p
the defaults see columns j - 21 .. j + 3, and the pixels j + 4 .. j + 21 of that row,
although they come before p, are in the blind spot. Dilation widens the field; it does
not fill the wedge (the gated model does).

For K = 3 and F >= 3 the field is exactly the full region within those bounds:

    row i:                   columns j - R .. j - 1
    row i - u, 1 <= u <= R:  columns j - R .. j + min(r0 + u - 1, R)

provided the dilations leave no gaps: every integer 0 .. sum_l d_l is the sum of some
of them (1, 2, 4, 8 are binary digits, so the defaults qualify). Otherwise the field
has holes: dilations [4] after a 3x3 first layer skip the pixels 2, 3 and 4 left of p.
tests/test_dilated.py checks both the region and the Minkowski sum against the pixels
where our input gradient is non-zero.
"""

# The network is the plain PixelCNN stack with a dilation per B layer, so the plain
# model's functions run it unchanged: `pixelcnn.layers(config)` reads "first_kernel_size"
# and "dilations" from this config, and every masked conv takes its layer's dilation.
from .pixelcnn import (  # noqa: F401
    backward, forward, init_params, out_channels, param_shapes, sampler_init, sampler_logits, sampler_row_done,
)

CONDITIONAL = True     # accepts config["n_classes"] > 0 and labels (conditioning.py)

DEFAULTS = {
    "model": "dilated",
    "hidden": 64,                       # h, channels of every hidden layer
    "dilations": [1, 2, 4, 8, 1, 2],    # d_l, one mask-B layer per entry
    "kernel_size": 3,                   # K, for the mask-B layers
    "first_kernel_size": 7,             # F, for the mask-A layer (dilation 1)
    "pixels": "binary",                 # "binary" (1 logit/pixel) or "8bit" (256 logits/pixel)
    "height": 28,
    "width": 28,
}
