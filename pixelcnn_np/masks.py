"""Causal masks: which kernel taps a masked convolution may use.

PixelCNN models p(x) = prod_p p(x_p | x_<p) with pixels in raster order (row by row,
left to right). A convolution whose output at pixel p must not see x_p or any later
pixel gets its kernel multiplied by a 0/1 mask. For a K x K kernel with centre
r = K // 2, tap (ky, kx) reads the input at offset (ky - r, kx - r) from the output
pixel, so a tap is "in the past" when

    ky < r                  (a row above), or
    ky == r and kx < r      (same row, to the left).

    mask A (first layer):  past taps only          -> output at p sees x_<p
    mask B (later layers): past taps + the centre  -> output at p sees h_<=p

Stacking one mask-A layer and any number of mask-B layers keeps the output at p a
function of x_<p only (B layers may look at position p of a *hidden* map, which
itself only saw x_<p).

Example, K = 5 (A on the left, B on the right):

    1 1 1 1 1      1 1 1 1 1
    1 1 1 1 1      1 1 1 1 1
    1 1 0 0 0      1 1 1 0 0
    0 0 0 0 0      0 0 0 0 0
    0 0 0 0 0      0 0 0 0 0

A 7x7 mask A keeps 24 of 49 taps and mask B keeps 25: the fast convolution in
`conv.py` gathers only those taps instead of multiplying by zeros.
"""

import numpy as np

MASK_TYPES = ("A", "B")


def causal_mask(kernel_size, mask_type):
    """The (K, K) 0/1 causal mask of type "A" or "B" for an odd kernel size K.

    Returns a float64 array `m` with m[ky, kx] = 1 where the tap may be used.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)):
        raise TypeError(f"kernel_size must be an int, got {type(kernel_size).__name__}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    k = int(kernel_size)
    r = k // 2
    m = np.zeros((k, k))
    m[:r, :] = 1.0              # every row above the centre
    m[r, :r] = 1.0              # the centre row, left of the centre
    if mask_type == "B":
        m[r, r] = 1.0           # B may also read the centre tap
    return m


def kept_taps(mask):
    """The (T, 2) int64 array of (ky, kx) positions where `mask` is non-zero, in
    raster order. This is the list of taps a mask-aware convolution gathers."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (KH, KW), got shape {mask.shape}")
    ky, kx = np.nonzero(mask)
    return np.stack([ky, kx], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------------
# The two stacks of the Gated PixelCNN (van den Oord et al., 2016b)
# ----------------------------------------------------------------------------------

def vertical_mask(kernel_size):
    """(K, K) mask of the vertical stack: every row above the centre *and* the centre row.

    The vertical stack's feature at row i therefore depends on input rows <= i, over
    the full width of the kernel. It is fed to the horizontal stack only after a
    shift down by one row, so the horizontal stack at row i sees rows < i from it.
    K = 3 keeps 6 of 9 taps:

        1 1 1
        1 1 1
        0 0 0
    """
    m = causal_mask(kernel_size, "B")
    r = kernel_size // 2
    m[r, :] = 1.0
    return m


def horizontal_mask(kernel_size, mask_type):
    """(K, K) mask of the horizontal stack: the centre row only, left of the centre
    (type "A", first layer: no pixel sees itself) or up to and including it ("B").
    K = 3, type B keeps 2 of 3 taps of its row:

        0 0 0
        1 1 0
        0 0 0
    """
    m = causal_mask(kernel_size, mask_type)
    r = kernel_size // 2
    m[:r, :] = 0.0
    return m


# ----------------------------------------------------------------------------------
# Colour: R -> G -> B within a pixel (van den Oord et al., 2016a, PixelRNN section 3.4)
# ----------------------------------------------------------------------------------

def channel_groups(n_channels, n_groups=3):
    """(n_channels,) int64: the colour group (0 = R, 1 = G, 2 = B) of every channel.

    Channels are split into n_groups contiguous blocks, as evenly as they go:
    group[c] = floor(c n_groups / n_channels). The input image (3 channels) gets R, G, B;
    64 hidden channels get 22 R, 21 G, 21 B; an 8-bit head's 3 x 256 logits get the first
    256 for R, the next 256 for G, the last 256 for B. Every layer uses this one rule, so
    a channel's group is known from its index alone. n_groups = 1 (a grey image): every
    channel is in group 0."""
    n_channels = int(n_channels)
    if n_groups < 1 or n_channels < n_groups:
        raise ValueError(f"{n_channels} channels cannot be split into {n_groups} colour groups; "
                         f"use at least {n_groups} channels")
    return (np.arange(n_channels) * n_groups) // n_channels


def subpixel_mask(mask, mask_type, out_groups, in_groups):
    """The (O, C, K, K) 0/1 mask of a colour layer, from the (K, K) spatial `mask` of its
    grey version (`causal_mask` or `horizontal_mask`).

    Off the centre, tap (ky, kx) is kept for every (o, c) exactly where mask[ky, kx] is:
    it reads another pixel, and the spatial mask already decides whether that pixel is
    in the past. At the centre tap the layer reads the pixel p it writes, and the
    channel groups decide (g = out_groups[o], g' = in_groups[c]):

        mask A:  M[o, c, r, r] = 1 if g' <  g     G reads R of p, B reads R and G of p
        mask B:  M[o, c, r, r] = 1 if g' <= g     ... and each group also its own group

    So a group-g feature at p depends on the pixels before p and on the colours of p
    before g (true for the image, whose channel g *is* colour g; mask A keeps it true
    one layer up, and mask B keeps it true from then on). The head predicts colour g from
    group-g features, which gives

        p(x_p) = p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p).

    With one group (in_groups = out_groups = 0, a grey image) mask A drops the centre
    tap and mask B keeps it: `causal_mask` exactly. The (3, 3) centre block of a
    3 -> 3 layer (rows: output R, G, B; columns: input R, G, B):

        mask A   0 0 0        mask B   1 0 0
                 1 0 0                 1 1 0
                 1 1 0                 1 1 1
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2 or mask.shape[0] % 2 == 0 or mask.shape[1] % 2 == 0:
        raise ValueError(f"mask must be (K, K) with K odd, got shape {mask.shape}")
    out_groups, in_groups = np.asarray(out_groups), np.asarray(in_groups)
    rh, rw = mask.shape[0] // 2, mask.shape[1] // 2
    m = np.repeat(np.repeat(mask[None, None], len(out_groups), axis=0), len(in_groups), axis=1)
    reads = in_groups[None, :] < out_groups[:, None] if mask_type == "A" else in_groups[None, :] <= out_groups[:, None]
    m[:, :, rh, rw] = reads                                             # (O, C): the centre tap
    return m
