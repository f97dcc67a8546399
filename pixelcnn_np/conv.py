"""Masked 2-D convolution: forward and backward, a slow reference and a fast engine.

Convention (PyTorch's): cross-correlation, weight layout (O, C, KH, KW), 'same' zero
padding ph = d * (KH // 2), pw = d * (KW // 2) for dilation d. With kernel centre
(rh, rw) = (KH // 2, KW // 2) and a 0/1 tap mask M,

    forward   y[n, o, i, j] = b[o] + sum_{c, ky, kx} M[ky, kx] w[o, c, ky, kx]
                                       * x[n, c, i + d (ky - rh), j + d (kx - rw)]

    backward  db[o]            = sum_{n, i, j} dy[n, o, i, j]
              dw[o, c, ky, kx] = M[ky, kx] sum_{n, i, j} dy[n, o, i, j]
                                       * x[n, c, i + d (ky - rh), j + d (kx - rw)]
              dx[n, c, i, j]   = sum_{o, ky, kx} M[ky, kx] w[o, c, ky, kx]
                                       * dy[n, o, i - d (ky - rh), j - d (kx - rw)]

(x and dy are zero outside the image.) dx is itself a correlation: of dy, with the
kernel flipped in both spatial axes and its (O, C) axes swapped. dw is masked, so
masked taps get zero gradient and stay zero under any optimizer.

Two implementations live here:

* `conv2d_forward_reference` / `conv2d_backward_reference`: one `einsum` per kept
  tap, a direct transcription of the sums above. Slow and obvious: read these first.
* `conv2d_forward` / `conv2d_backward`: the engine. A mask zeroes about half of a
  causal kernel (7x7 type B keeps 25 of 49 taps), so instead of multiplying by zeros
  we *gather only the kept taps* into a column buffer ("im2col" over kept taps),

      cols[c * T + t, n, i * W + j] = x[n, c, i + d (ky_t - rh), j + d (kx_t - rw)]   (C*T, nb, H*W)

  for a chunk of nb images at a time, so the buffer stays about 1 MB (in cache), and do
  one matrix product per image,  y[n] = w_kept (O, C*T) @ cols[:, n] (C*T, H*W),
  written straight into y. The gather is a Numba kernel
  (`_gather_taps_kernel`); the product is BLAS. Backward re-gathers the columns
  instead of keeping them from the forward pass (recomputing is cheap; holding every
  layer's buffer for a batch of 64 would cost ~300 MB per layer), and computes dx as
  the flipped correlation above through the very same gather + GEMM. On several cores
  the chunks are shared out, whole chunks per thread, each with a one-thread BLAS
  (`threads.py`), in every layer: one rule from 1 to 16 cores.

  Why this and not something cleverer (measured on a 2-core Intel Xeon VM with AVX-512,
  float32, one thread, 3x3 mask B, 64 channels, batch 64; benchmarks/results/step_times.md,
  2026-12-02): per-tap GEMMs on shifted views of one padded buffer (no gather at all:
  y += w_t (O, C) @ x_padded[shifted] (C, H * Wp), BLAS with beta = 1) took 44-53 ms per
  forward against this engine's 33-36 ms, because five K = 64 products accumulating into
  y run slower than one K = 320 product; with 4 or 16 images per product, 47-71 ms. The
  GEMMs here run at the rate this BLAS reaches on their shapes (about 105-110 GFLOP/s,
  against 136-141 for 2048^3); the gather costs about a sixth of them.

The public pair `masked_conv2d_forward` / `masked_conv2d_backward` is the engine with
the causal mask of `masks.py`.
"""

import threading

import numpy as np
from numba import njit

from .masks import causal_mask, kept_taps
from .threads import n_threads, run_in_threads
from . import validation
from .validation import check_float_array, check_positive_int, check_same_dtype

# Column-buffer budget per chunk, in elements (256K float32 = 1 MB: the gathered columns
# are still in cache when the GEMM reads them; measured 15% faster per step than 16 MB).
_CHUNK_ELEMENTS = 1 << 18

# One threading rule for every layer and core count (threads.py): a layer's images are cut
# into a multiple of n_threads() chunks (`_image_chunks`), and each thread gathers and
# multiplies its own run of chunks with a one-thread BLAS. Measured on 2 cores, default
# net, whole steps interleaved in one process (benchmarks/results/step_times.md, 2026-12-02):
# 0.450 s against 0.512 s for the rule before (layers of fewer than 1024 gathered rows left
# to OpenBLAS's threads) and 0.512 s for BLAS's threads everywhere. OpenBLAS's threads
# meet at the end of every product, and on a core that something else also uses, that
# wait is where the time goes.

# One reusable column buffer per dtype and thread (threads.py runs chunks on several
# threads). A fresh 16 MB array per chunk would be page-faulted in by the gather on
# every call, which costs as much as the gather.
_WORKSPACE = threading.local()


def _columns(rows, nb, hw, dtype):
    """A (rows, nb, hw) C-contiguous view of this thread's reusable column buffer."""
    size = rows * nb * hw
    buffers = _WORKSPACE.__dict__
    buf = buffers.get(np.dtype(dtype))
    if buf is None or buf.size < size:
        buf = np.empty(max(size, _CHUNK_ELEMENTS), dtype=dtype)
        buffers[np.dtype(dtype)] = buf
    return buf[:size].reshape(rows, nb, hw)


# ----------------------------------------------------------------------------------
# Reference: one einsum per kept tap
# ----------------------------------------------------------------------------------

def _pad(x, ph, pw):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def conv2d_forward_reference(x, w, b, mask=None, dilation=1):
    """Slow, obvious masked correlation. x (N, C, H, W), w (O, C, KH, KW), b (O,),
    mask (KH, KW) or None -> y (N, O, H, W)."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    d = dilation
    mask = np.ones((KH, KW)) if mask is None else mask
    xp = _pad(x, d * (KH // 2), d * (KW // 2))                  # (N, C, H + 2ph, W + 2pw)
    y = np.zeros((N, O, H, W), dtype=x.dtype) + b[None, :, None, None]
    for ky in range(KH):
        for kx in range(KW):
            if mask[ky, kx] == 0:
                continue
            patch = xp[:, :, d * ky:d * ky + H, d * kx:d * kx + W]  # (N, C, H, W)
            y += np.einsum("oc,nchw->nohw", w[:, :, ky, kx], patch)
    return y


def conv2d_backward_reference(dy, x, w, mask=None, dilation=1):
    """Slow, obvious gradients of `conv2d_forward_reference`.
    dy (N, O, H, W) -> dx (N, C, H, W), dw (O, C, KH, KW), db (O,)."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    d = dilation
    ph, pw = d * (KH // 2), d * (KW // 2)
    mask = np.ones((KH, KW)) if mask is None else mask
    xp = _pad(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for ky in range(KH):
        for kx in range(KW):
            if mask[ky, kx] == 0:
                continue
            window = (slice(None), slice(None), slice(d * ky, d * ky + H), slice(d * kx, d * kx + W))
            dw[:, :, ky, kx] = np.einsum("nohw,nchw->oc", dy, xp[window])
            dxp[window] += np.einsum("oc,nohw->nchw", w[:, :, ky, kx], dy)
    dx = dxp[:, :, ph:ph + H, pw:pw + W]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


# ----------------------------------------------------------------------------------
# Engine: gather the kept taps (Numba), multiply (BLAS)
# ----------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _gather_taps_kernel(x, off_y, off_x, cols):
    """cols[c * T + t, n, i * W + j] = x[n, c, i + off_y[t], j + off_x[t]], or 0 where
    that position falls outside the image (the 'same' zero padding, without a padded copy).

    x (nb, C, H, W); off_y, off_x (T,) tap offsets from the output pixel, already
    multiplied by the dilation (d (ky - rh), d (kx - rw)); cols (C*T, nb, H*W) written in full.
    Serial on purpose: a `prange` version measured no faster, and Numba's OpenMP workers
    spinning beside OpenBLAS's threads slowed the GEMM that follows by up to 2.7x. The
    parallelism is one level up: threads.py gives each thread whole chunks (gather +
    GEMM), and `nogil=True` lets those threads run this kernel at the same time.
    """
    nb, C, H, W = x.shape
    T = off_y.shape[0]
    for ct in range(C * T):
        c = ct // T
        oy = off_y[ct % T]
        ox = off_x[ct % T]
        for n in range(nb):
            for i in range(H):
                ii = i + oy
                if ii < 0 or ii >= H:                     # the whole input row is padding
                    for j in range(W):
                        cols[ct, n, i * W + j] = 0
                else:
                    for j in range(W):
                        jj = j + ox
                        cols[ct, n, i * W + j] = x[n, c, ii, jj] if 0 <= jj < W else 0
    return cols


def gather_taps_reference(x, off_y, off_x):
    """NumPy twin of `_gather_taps_kernel`: pad, then fancy-index (no loops)."""
    nb, C, H, W = x.shape
    T = len(off_y)
    py = int(np.max(np.abs(off_y))) if T else 0
    px = int(np.max(np.abs(off_x))) if T else 0
    xp = _pad(x, py, px)
    ii = np.arange(H)[None, :, None] + py + np.asarray(off_y)[:, None, None]   # (T, H, 1)
    jj = np.arange(W)[None, None, :] + px + np.asarray(off_x)[:, None, None]   # (T, 1, W)
    g = xp[:, :, ii, jj]                                                       # (nb, C, T, H, W)
    return g.transpose(1, 2, 0, 3, 4).reshape(C * T, nb, H * W)


def _tap_offsets(taps, dilation, KH, KW):
    """(off_y, off_x): each kept tap's offset from the output pixel, in input pixels."""
    off_y = np.ascontiguousarray((taps[:, 0] - KH // 2) * dilation)
    off_x = np.ascontiguousarray((taps[:, 1] - KW // 2) * dilation)
    return off_y, off_x


def _image_chunks(rows, hw, n_images):
    """[(n0, n1), ...]: images 0..n_images-1 cut into consecutive chunks whose (rows, n1 - n0,
    hw) column buffer stays within the budget (or holds one image, if one is already
    larger), and whose count is a multiple of the thread count (threads.n_threads()), or
    one chunk per image when there are fewer images than that. Sizes differ by at most one
    image, so every thread gets an equal share (64 images of 24 rows on 2 threads: 6 chunks
    of 10 or 11 images; cutting at the budget alone, 5 of 13, would give them 39 and 25)."""
    t = n_threads()
    budget = max(1, _CHUNK_ELEMENTS // max(1, rows * hw))        # images the budget allows
    count = -(-n_images // budget)                               # fewest chunks within it
    count = min(n_images, -(-count // t) * t)                    # rounded up to a multiple of t
    bounds = [k * n_images // count for k in range(count + 1)] if count else [0]
    return list(zip(bounds[:-1], bounds[1:]))


def _correlate(x, wk, taps, dilation, KH, KW, b=None):
    """y (N, O, H*W) = w_kept (O, C*T) applied to the kept taps of x (N, C, H, W), + b (O,) if given.

    Per chunk of nb images: gather its columns (C*T, nb, H*W), then one GEMM per image,
    written straight into y[n] (`out=`: no temporary, no transposed copy; cols[:, k] is a
    strided view BLAS reads as it is), and add the bias while the chunk's rows of y are
    still in cache. (Every 64-channel layer has one image per chunk anyway: 320 x 784
    columns are already 1 MB.)"""
    N, C, H, W = x.shape
    O, CT = wk.shape
    HW = H * W
    if len(taps) == 0:                                           # e.g. a 1x1 mask A: bias only
        y = np.zeros((N, O, HW), dtype=x.dtype)
        return y if b is None else y + b[None, :, None]
    if KH == 1 and KW == 1:                                      # 1x1: no gather needed
        y = np.matmul(wk, x.reshape(N, C, HW))                    # (N, O, HW)
        return y if b is None else y.__iadd__(b[None, :, None])
    off_y, off_x = _tap_offsets(taps, dilation, KH, KW)
    y = np.empty((N, O, HW), dtype=x.dtype)

    def chunks(group):                                           # one thread's chunks: its own rows of y
        for n0, n1 in group:
            cols = _columns(CT, n1 - n0, HW, x.dtype)
            _gather_taps_kernel(x[n0:n1], off_y, off_x, cols)
            for k in range(n1 - n0):                             # one GEMM per image, straight into y
                np.matmul(wk, cols[:, k], out=y[n0 + k])          # (O, CT) @ (CT, HW) -> (O, HW)
            if b is not None:
                y[n0:n1] += b[:, None]                             # bias, while y[n0:n1] is in cache
    run_in_threads(chunks, _image_chunks(CT, HW, N))
    return y


def _weight_grad(x, dy, taps, dilation, KH, KW):
    """dw_kept (O, C*T) = sum over images of dy (O, HW) @ cols^T (HW, C*T).

    Computed transposed, image by image, dw_kept^T (C*T, O) += cols[:, n] (C*T, HW) @ dy[n]^T
    (HW, O): the same numbers, but OpenBLAS runs this orientation faster (measured 104
    against 85 GFLOP/s for 320 x 784 x 64 in float32, one thread, and 109 against 91 for
    1600 rows). Each thread sums its own images; the partial sums are added in a fixed order."""
    N, C, H, W = x.shape
    O = dy.shape[1]
    T = len(taps)
    HW = H * W
    if T == 0:
        return np.zeros((O, 0), dtype=x.dtype)
    if KH == 1 and KW == 1:                                      # one GEMM per image, summed
        return np.matmul(dy.reshape(N, O, HW), x.reshape(N, C, HW).transpose(0, 2, 1)).sum(axis=0)
    off_y, off_x = _tap_offsets(taps, dilation, KH, KW)

    def partial_sum(group):                                      # one thread's share of the sum over images
        dwk_t = np.zeros((C * T, O), dtype=x.dtype)
        product = np.empty((C * T, O), dtype=x.dtype)
        for n0, n1 in group:
            cols = _columns(C * T, n1 - n0, HW, x.dtype)
            _gather_taps_kernel(x[n0:n1], off_y, off_x, cols)
            for k in range(n1 - n0):                             # image n0 + k: (C*T, HW) @ (HW, O)
                np.matmul(cols[:, k], dy[n0 + k].reshape(O, HW).T, out=product)
                dwk_t += product
        return dwk_t
    partial_sums = run_in_threads(partial_sum, _image_chunks(C * T, HW, N))
    return sum(partial_sums, np.zeros((C * T, O), dtype=x.dtype)).T  # added in a fixed order


def _check_conv_args(x, w, b, mask, dilation, check_finite):
    check_float_array("x", x, ndim=4)
    check_float_array("w", w, ndim=4)
    check_float_array("b", b, ndim=1)
    check_same_dtype(x=x, w=w, b=b)
    dilation = check_positive_int("dilation", dilation)
    O, C, KH, KW = w.shape
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one channel, got shape {x.shape}")
    if O == 0:
        raise ValueError(f"w must have at least one output channel, got shape {w.shape}")
    if x.shape[1] != C:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {C} (w shape {w.shape})")
    if KH % 2 == 0 or KW % 2 == 0:
        raise ValueError(f"kernel sizes must be odd, got w shape {w.shape}")
    if b.shape != (O,):
        raise ValueError(f"b must have shape ({O},), got {b.shape}")
    if mask is not None and np.shape(mask) != (KH, KW):
        raise ValueError(f"mask must have shape ({KH}, {KW}), got {np.shape(mask)}")
    if check_finite:
        for name, a in (("x", x), ("w", w), ("b", b)):
            validation.check_finite(name, a)
    return dilation


# The NaN/inf check. A NaN in x, w or b would otherwise come out as NaN in y without a
# word. It reads every input once: measured (2 shared cores, float32, medians of 51) 0.75-0.98
# ms for x, w and b of a seed-net layer (x (64, 64, 28, 28), w (64, 64, 7, 7)) and 0.72-0.79 ms
# for its dy, against 110-134 ms for that layer's forward pass and 239-287 ms for its
# backward (0.7% and 0.3%; checked and unchecked calls, interleaved, were indistinguishable),
# and about 1% of a 3x3 layer's forward (80 ms). A model checks its input image once
# (validation.check_input), so its own calls pass check_finite=False: a non-finite value
# inside a network (an overflow after a huge step) is the training loop's to report, with
# the step and the parameter (train.check_finite).

def conv2d_forward(x, w, b, mask=None, dilation=1, *, check_finite=True):
    """Correlation over the kept taps of `mask`, fast engine.

    x (N, C, H, W), w (O, C, KH, KW), b (O,), mask (KH, KW) of 0/1 or None (all taps)
    -> y (N, O, H, W) with the dtype of x, and the cache for `conv2d_backward`.
    The cache keeps x and w only; the column buffers are re-gathered in backward.
    check_finite: raise ValueError if x, w or b holds a NaN or inf (see above).
    """
    dilation = _check_conv_args(x, w, b, mask, dilation, check_finite)
    O, C, KH, KW = w.shape
    N, _, H, W = x.shape
    mask = np.ones((KH, KW)) if mask is None else np.asarray(mask)
    taps = kept_taps(mask)                                        # (T, 2)
    wk = np.ascontiguousarray(w[:, :, taps[:, 0], taps[:, 1]].reshape(O, -1))  # (O, C*T)
    y = _correlate(x, wk, taps, dilation, KH, KW, b)              # (N, O, H*W), bias added
    cache = (x, w, mask, taps, dilation)
    return y.reshape(N, O, H, W), cache


def conv2d_backward(dy, cache, need_dx=True, *, check_finite=True):
    """Gradients of `conv2d_forward`. dy (N, O, H, W) -> (dx, dw, db) with shapes of
    (x, w, b); dx is None when need_dx is False (the first layer's input is data).
    check_finite: raise ValueError if dy holds a NaN or inf."""
    x, w, mask, taps, dilation = cache
    check_float_array("dy", dy, ndim=4)
    O, C, KH, KW = w.shape
    N, _, H, W = x.shape
    if dy.shape != (N, O, H, W):
        raise ValueError(f"dy must have shape {(N, O, H, W)}, got {dy.shape}")
    if check_finite:
        validation.check_finite("dy", dy)
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    T = len(taps)
    db = dy.sum(axis=(0, 2, 3))                                   # (O,)
    dwk = _weight_grad(x, dy, taps, dilation, KH, KW)             # (O, C*T)
    dw = np.zeros_like(w)
    dw[:, :, taps[:, 0], taps[:, 1]] = dwk.reshape(O, C, T)       # masked taps stay 0
    dx = None
    if need_dx:
        # dx = correlation of dy with the flipped kernel, (O, C) swapped.
        flipped = np.stack([KH - 1 - taps[:, 0], KW - 1 - taps[:, 1]], axis=1)
        wk_t = w[:, :, taps[:, 0], taps[:, 1]].transpose(1, 0, 2).reshape(C, O * T)  # (C, O*T)
        dx = _correlate(dy, np.ascontiguousarray(wk_t), flipped, dilation, KH, KW)
        dx = dx.reshape(N, C, H, W)
    return dx, dw, db


def masked_conv2d_forward(x, w, b, mask_type, dilation=1, *, check_finite=True):
    """Causal convolution of type "A" or "B" (see `masks.py`).

    x (N, C, H, W), w (O, C, K, K) with K odd, b (O,) -> y (N, O, H, W), cache.
    Output at raster position p depends on x at positions < p (A) or <= p (B).
    Works in float32 and float64 and keeps the dtype of x.
    check_finite: raise ValueError if x, w or b holds a NaN or inf.
    """
    check_float_array("w", w, ndim=4)
    if w.shape[2] != w.shape[3]:
        raise ValueError(f"masked_conv2d needs a square kernel, got w shape {w.shape}")
    return conv2d_forward(x, w, b, causal_mask(w.shape[2], mask_type), dilation, check_finite=check_finite)


def masked_conv2d_backward(dy, cache, need_dx=True, *, check_finite=True):
    """Gradients of `masked_conv2d_forward`: dy (N, O, H, W) -> (dx, dw, db).
    dw is zero at every masked tap. check_finite: raise ValueError if dy holds a NaN or inf."""
    return conv2d_backward(dy, cache, need_dx=need_dx, check_finite=check_finite)


# ----------------------------------------------------------------------------------
# One output row segment at a time: what fast (cached) sampling needs
# ----------------------------------------------------------------------------------

def conv2d_row_reference(x, w, b, mask, dilation, i, j0, j1):
    """Slow, obvious: the output of the masked correlation at row i, columns j0..j1-1.
    x (N, C, H, W) -> y (N, O, j1 - j0). Positions outside the image read zero."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    y = np.zeros((N, O, j1 - j0), dtype=np.result_type(x, w)) + b[None, :, None]
    for ky, kx in kept_taps(mask):
        ii = i + dilation * (ky - KH // 2)
        if not 0 <= ii < H:
            continue
        for j in range(j0, j1):
            jj = j + dilation * (kx - KW // 2)
            if 0 <= jj < W:
                y[:, :, j - j0] += x[:, :, ii, jj] @ w[:, :, ky, kx].T        # (N, C) @ (C, O)
    return y


# The fast twin, for the samplers. A sampler's cached maps are its own business, so it
# keeps them channels-last, (N, H, W, C): then the C inputs of one tap are contiguous in memory
# and gathering one output position reads T short runs instead of C * T scattered
# values (measured 4x faster on the seed net). `row_conv_plan` does the per-layer work
# (kept taps, their offsets, the kept weights as one matrix) once per sampling run.

def row_conv_plan(w, b, mask, dilation):
    """What `conv2d_row_nhwc` needs for one layer, computed once:
    offsets (T,) of the kept taps and the weights as a (T*C, O) matrix in (tap, channel) order."""
    O, C, KH, KW = w.shape
    taps = kept_taps(mask)
    off_y, off_x = _tap_offsets(taps, dilation, KH, KW)
    w_tc = np.ascontiguousarray(w[:, :, taps[:, 0], taps[:, 1]].transpose(2, 1, 0).reshape(-1, O))  # (T*C, O)
    return {"off_y": off_y, "off_x": off_x, "w": w_tc, "b": b}


@njit(cache=True)
def _gather_row_nhwc_kernel(x, off_y, off_x, i, j0, j1, cols):
    """cols[n * J + (j - j0), t * C + c] = x[n, i + off_y[t], j + off_x[t], c] (0 outside).
    x (N, H, W, C) -> cols (N * J, T * C)."""
    N, H, W, C = x.shape
    T = off_y.shape[0]
    J = j1 - j0
    for n in range(N):
        for j in range(j0, j1):
            r = n * J + (j - j0)
            for t in range(T):
                ii = i + off_y[t]
                jj = j + off_x[t]
                if 0 <= ii < H and 0 <= jj < W:
                    for c in range(C):
                        cols[r, t * C + c] = x[n, ii, jj, c]
                else:
                    for c in range(C):
                        cols[r, t * C + c] = 0
    return cols


def conv2d_row_nhwc(x, plan, i, j0, j1):
    """The layer of `plan` at row i, columns j0..j1-1, on a channels-last x (N, H, W, C)
    -> (N, J, O). Same numbers as `conv2d_row_reference` on the NCHW layout, transposed."""
    N, H, W, C = x.shape
    J = j1 - j0
    TC, O = plan["w"].shape
    if TC == 0:
        return np.zeros((N, J, O), dtype=x.dtype) + plan["b"]
    cols = _gather_row_nhwc_kernel(x, plan["off_y"], plan["off_x"], i, j0, j1, np.empty((N * J, TC), dtype=x.dtype))
    return (cols @ plan["w"] + plan["b"]).reshape(N, J, O)
