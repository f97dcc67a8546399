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
