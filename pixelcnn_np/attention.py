"""Causal self-attention over the H*W positions in raster order: the layer, forward and
backward (the model that stacks it between masked convolutions is attention_pixelcnn.py).

A masked convolution reads a fixed window around p; stacked, the windows grow slowly
and leave a blind spot. Attention lets the position p read *every* allowed position at
once, weighted by content: one block, and the whole past is in reach.

The layer
---------
For one image, flatten the positions in raster order, p = i W + j (D = H W of them),
and put the channels last: X (D, C). With d = key_channels,

    U = X + E                      (D, C)   E[p] = pos[:, i, j], a learned vector per position
    Q = U Wq^T + bq                (D, d)   queries        Wq, Wk, Wv (d, C): 1x1 projections
    K = U Wk^T                     (D, d)   keys           (stored as nn.Linear stores its
    V = U Wv^T + bv                (D, d)   values          weight: (out, in))
    S = Q K^T / sqrt(d)            (D, D)   S[p, q] = <Q_p, K_q> / sqrt(d)
    A[p, q] = exp(S[p, q]) / sum_{q' in keys(p)} exp(S[p, q'])   for q in keys(p), else 0
    O = A V                        (D, d)
    Y = O Wo^T + bo                (D, C)   Wo (C, d)

and the layer returns Y as an (N, C, H, W) map. The keys have no bias: it would add
<Q_p, bk> to every score of row p, which the softmax cancels, so its gradient would be
exactly zero forever. The block is residual: the model adds h + Y. A row with no key at all (only possible with include_self=False, at
p = 0) has A[p] = 0, so O_p = 0 and Y_p = bo.

Which keys a query at p may see: keys(p) = {q <= p} (include_self=True) or {q < p}.
What is safe depends on what the input X already hides. In the model the block sits
after a mask-A conv (and mask-B convs): the features at q depend only on the pixels
x_<q, so the features at every q <= p, p itself included, depend only on x_<p, and
keys(p) = {q <= p} is safe (the query at p too). Over *raw pixels* X = x, the key and
value at p are x_p itself, and only keys(p) = {q < p} keeps them out: tests/test_attention.py
shows that the inclusive set then lets y_p change with x_p (a leak) and the strict one
does not -- provided the query at p does not read x_p either (over raw pixels it does:
Q_p = Wq (x_p + E_p), so a raw-pixel attention layer would also need a query made from
x_<p; the test shows that leak too). The masked entries get score -inf, so their weight
is exactly 0 and a changed future key or value cannot move y_p by even one bit.

Positional signal. Scores depend on content only: permute the keys and the weights
permute with them. After convolutions the features carry little position (only what the
zero padding tells near the border), so without help a query could not ask for "the pixel
just above me". We add a learned vector E[p] (C,) to the features of every position
before the projections (the learned position embedding of BERT/GPT-2, kept 2-D here as
pos (C, H, W)): the score <Wq (X_p + E_p), Wk (X_q + E_q)> then contains the term
<Wq E_p, Wk E_q>, a learned function of the pair of positions (p, q). We prefer it to
fixed sinusoidal or coordinate channels (PixelSNAIL's choice) because it is one line
forward and one line backward (dE = sum over the batch of dU), and it adds no input
channels; its price is C H W parameters per block (32 x 784 = 25k) and a model tied to
one image size (which every model here is anyway: config's height and width).

Backward (per image; sums over p run over the D positions):

    dbo = sum_p dY_p               dWo = dY^T O            dO = dY Wo
    dV  = A^T dO                   dA  = dO V^T
    dS[p, q] = A[p, q] (dA[p, q] - sum_q' A[p, q'] dA[p, q'])      softmax backward, row by row
               (zero off keys(p), because A is)
    dQ = dS K / sqrt(d)            dK = dS^T Q / sqrt(d)
    dWq = dQ^T U,  dbq = sum_p dQ_p      (the same for v; k has only dWk)
    dU = dQ Wq + dK Wk + dV Wv           (U feeds three projections: their gradients summed)
    dX = dU                        dE = sum_n dU  (summed over the batch too)

Two implementations: `causal_attention_reference` loops over images, queries and keys,
a direct transcription of the sums above (slow, obvious: read it first);
`causal_attention_forward` / `causal_attention_backward` are the engine. It keeps the
channels first, as the feature maps are (Q^T, K^T, V^T are (N, d, D): the three
projections are one product [Wq; Wk; Wv] U^T, and no (N, C, D) array is transposed),
and runs the (D, D) part IMAGE_GROUP images and one tile of QUERY_TILE queries at a
time (`query_tiles`): the queries r0..r1-1 need only the keys 0..r1-1, and their masked
keys all lie in the tile's diagonal block, so only that block gets the -inf mask. With
tiles of 56 (two image rows), 53.6% of the square is computed (the triangle is 50%).
Three products carry one extra row to save a pass over the tile each:
[V; 1]^T E^T gives E V and the denominators z = E 1 together; [Q; -lse] [K; 1]^T gives
S - lse; [dO; -delta] [V; 1]^T gives dA - delta (delta below).

Memory vs recompute. The cache keeps U, Q, K, V, O ((N, D, C or d) each) and, per query,
lse_p = log sum_{q in keys(p)} exp(S[p, q]) (the log of its softmax denominator), not
A: at batch 64 and D = 784 in float32 the kept tiles of A would be 85 MB per block.
The backward pass recomputes A = exp(S - lse) tile by tile (one product and one
exponential per tile, as FlashAttention does), so the (D, D) weights only ever exist
one (8, 56, <= 784) tile at a time, in the CPU cache. It also never forms
rowsum(A * dA): that sum is sum_q A[p, q] <dO_p, V_q> = <dO_p, O_p> = delta_p, an
(N, D) product. Keeping A would save the recomputation (one product and one
exponential per tile) at the price of writing and re-reading those 85 MB every step;
benchmarks/results/attention.md has the measurement of both.

One position at a time
----------------------
The cached sampler (sampling.sample_cached) needs the block at one position p only,
once the features at every q <= p are known: `attend_one_position` stores K_p and V_p
into per-block caches of the keys and values and attends over the cached q <= p,
the same sums as above for one row of S.
"""

import math

import numpy as np

from .activations import softmax
from .validation import check_float_array

QUERY_TILE = 56          # queries per tile (two image rows at W = 28), see query_tiles
IMAGE_GROUP = 8          # images per tile product: a (8, 56, 784) float32 tile is 1.4 MB, in L2
NO_KEY_LSE = 1e30        # log-denominator of a row with no key: exp(S - 1e30) = 0 in float32 and float64
ATTENTION_PARTS = ("pos", "q.w", "q.b", "k.w", "v.w", "v.b", "o.w", "o.b")


def key_mask(D, include_self=True):
    """(D, D) bool: entry [p, q] is True when the query at p may see the key at q,
    i.e. q <= p (include_self) or q < p. Raster order, D = H * W positions."""
    p = np.arange(D)
    return p[None, :] <= p[:, None] if include_self else p[None, :] < p[:, None]


def _check_attention_params(x, ap):
    check_float_array("x", x, ndim=4)
    missing = [k for k in ATTENTION_PARTS if k not in ap]
    if missing:
        raise ValueError(f"attention parameters missing: {missing}")
    N, C, H, W = x.shape
    d = ap["q.w"].shape[0]
    expected = {"pos": (C, H, W), "q.w": (d, C), "q.b": (d,), "k.w": (d, C),
                "v.w": (d, C), "v.b": (d,), "o.w": (C, d), "o.b": (C,)}
    for k, shape in expected.items():
        if ap[k].shape != shape:
            raise ValueError(f"attention parameter {k!r} must have shape {shape} for x {x.shape}, "
                             f"got {ap[k].shape}")


def causal_attention_reference(x, ap, include_self=True):
    """Slow, obvious: the equations of the module docstring with loops over images,
    queries and keys. x (N, C, H, W), ap the dict of ATTENTION_PARTS -> y (N, C, H, W)."""
    N, C, H, W = x.shape
    d = ap["q.w"].shape[0]
    y = np.zeros_like(x)
    for n in range(N):
        u = [x[n, :, i, j] + ap["pos"][:, i, j] for i in range(H) for j in range(W)]   # D vectors (C,)
        for p in range(H * W):
            q_p = ap["q.w"] @ u[p] + ap["q.b"]                                           # (d,)
            keys = range(p + 1) if include_self else range(p)
            scores = [q_p @ (ap["k.w"] @ u[q]) / math.sqrt(d) for q in keys]
            o_p = np.zeros(d, dtype=x.dtype)
            if scores:
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                for q, e_q in zip(keys, e):
                    o_p += e_q / sum(e) * (ap["v.w"] @ u[q] + ap["v.b"])                 # A[p, q] V_q
            i, j = divmod(p, W)
            y[n, :, i, j] = ap["o.w"] @ o_p + ap["o.b"]
    return y


def key_bias(D, include_self, dtype):
    """(D, D) additive score mask: 0 where `key_mask` allows the key, -inf elsewhere."""
    return np.where(key_mask(D, include_self), 0, -np.inf).astype(dtype)


def query_tiles(D, size):
    """[(r0, r1), ...]: the D queries in consecutive tiles of `size` (the last may be
    shorter). The queries r0..r1-1 may only see keys q < r1, so a tile multiplies by the
    keys 0..r1-1 and never by a later one; every masked key of the tile then lies in its
    last r1 - r0 columns, the (r1 - r0, r1 - r0) block on the diagonal. With n tiles,
    (n + 1) / (2 n) of the (D, D) square is computed: 53.6% for D = 784 in tiles of 56
    (two image rows), the exact triangle being 50%."""
    return [(r0, min(D, r0 + size)) for r0 in range(0, D, size)]


def _tile_product(at, bt, r0, r1, diag=None):
    """at[:, :, r0:r1]^T bt[:, :, :r1] for a group of images: at (g, e, D), bt (g, e, D)
    -> (g, r1 - r0, r1), a new array; with diag (R, R) (0 or -inf) added to its diagonal
    block, where all the masked keys of the tile lie. With at = Q / sqrt(d), bt = K^T
    these are the scores S[r0:r1, :r1]."""
    s = at[:, :, r0:r1].transpose(0, 2, 1) @ bt[:, :, :r1]           # (g, R, r1) BLAS
    if diag is not None:
        s[:, :, r0:] += diag[:r1 - r0, :r1 - r0]
    return s


def _with_row(a, c):
    """[a ; c]: a (N, e, D) with one more row c (a scalar or (N, 1, D)) -> (N, e + 1, D).
    Products then carry one more term for free: [V ; 1]^T gives A V and the row sums
    of A together; [Q ; -lse] against [K ; 1] gives S - lse; [dO ; -delta] against
    [V ; 1] gives dA - delta. Each saves a pass over the (R, r1) tile."""
    out = np.empty((a.shape[0], a.shape[1] + 1, a.shape[2]), dtype=a.dtype)
    out[:, :-1] = a
    out[:, -1:] = c
    return out


def causal_attention_forward(x, ap, include_self=True):
    """Causal self-attention over raster positions (see the module docstring).

    x (N, C, H, W) float; ap: {"pos" (C, H, W), "q.w" (d, C), "q.b" (d,), "k.w" (d, C),
    "v.w" (d, C), "v.b" (d,), "o.w" (C, d), "o.b" (C,)}, of x's dtype.
    include_self: may the query at p see the key at p? (True after a mask-A layer.)
    -> y (N, C, H, W), cache. y is the attention output only; add x for the residual.

    The engine keeps the channels first, as x is: Q^T, K^T, V^T are (N, d, D), so the
    projections are one product Wqkv U and no (N, C, D) array is ever transposed. The
    (D, D) part runs IMAGE_GROUP images and one tile of queries at a time
    (`query_tiles`) and is not kept: the cache keeps, per query, the log of its softmax
    denominator, lse_p = log sum_{q in keys(p)} exp(S[p, q]), from which the backward
    pass recomputes A tile by tile (A = exp(S - lse)).
    """
    _check_attention_params(x, ap)
    N, C, H, W = x.shape
    D = H * W
    d = ap["q.w"].shape[0]
    u = (x + ap["pos"]).reshape(N, C, D)                              # U^T (N, C, D)
    w_qkv = np.concatenate([ap["q.w"], ap["k.w"], ap["v.w"]])         # (3d, C)
    qkv = w_qkv @ u                                                   # [Q; K; V]^T without biases (N, 3d, D)
    qt = (qkv[:, :d] + ap["q.b"][:, None]) / np.sqrt(x.dtype.type(d)) # Q^T / sqrt(d): S = qs K^T  (N, d, D)
    kt = qkv[:, d:2 * d]                                              # K^T (N, d, D)
    vt1 = _with_row(qkv[:, 2 * d:] + ap["v.b"][:, None], 1)           # [V^T; 1] (N, d + 1, D)
    tiles = query_tiles(D, QUERY_TILE)
    diag = key_bias(min(QUERY_TILE, D), include_self, x.dtype)        # (R, R) 0 or -inf
    ot = np.empty((N, d, D), dtype=x.dtype)                           # O^T
    lse = np.empty((N, 1, D), dtype=x.dtype)                          # log softmax denominators
    for n0 in range(0, N, IMAGE_GROUP):
        g = slice(n0, n0 + IMAGE_GROUP)
        for r0, r1 in tiles:
            s = _tile_product(qt[g], kt[g], r0, r1, diag)             # (g, R, r1) S[r0:r1, :r1]
            m = s.max(axis=2, keepdims=True)                          # (g, R, 1) row maxima
            m[m == -np.inf] = 0                                       # a row with no key (p = 0, strict)
            s -= m                                                    # stable: every exponent <= 0
            np.exp(s, out=s)                                          # E = exp(S - m), 0 at masked keys
            oz = vt1[g, :, :r1] @ s.transpose(0, 2, 1)                # [V; 1]^T E^T = [(E V)^T; z^T] (g, d + 1, R)
            z = oz[:, d:]                                             # (g, 1, R) softmax denominators
            empty = z == 0                                            # no key: A = 0, O = 0
            z[empty] = 1
            ot[g, :, r0:r1] = oz[:, :d] / z                           # O = A V = E V / z
            # no key: lse = NO_KEY_LSE, so exp(S - lse) = 0 in the backward pass (a finite
            # stand-in for +inf: BLAS may multiply an infinity by the zeros it pads with)
            lse[g, :, r0:r1] = np.where(empty, NO_KEY_LSE, m.transpose(0, 2, 1) + np.log(z))
    y = ap["o.w"] @ ot + ap["o.b"][:, None]                           # Y^T = Wo O^T + bo   (N, C, D)
    return y.reshape(N, C, H, W), (u, qt, kt, vt1, ot, lse, include_self, ap, x.shape)


def causal_attention_backward(dy, cache):
    """dy (N, C, H, W) -> (dx (N, C, H, W), grads {name: array} over ATTENTION_PARTS).

    The softmax backward dS = A * (dA - rowsum(A * dA)) uses rowsum(A * dA)_p =
    sum_q A[p, q] <dO_p, V_q> = <dO_p, O_p> =: delta_p, one (N, D) product instead of a
    pass over the tile. Channels first throughout, as in the forward pass."""
    u, qt, kt, vt1, ot, lse, include_self, ap, shape = cache
    N, C, H, W = shape
    D, d = H * W, qt.shape[1]
    dy = dy.reshape(N, C, D)                                          # dY^T (N, C, D)
    g = {"o.w": np.matmul(dy, ot.transpose(0, 2, 1)).sum(axis=0),     # dWo = dY^T O      (C, d)
         "o.b": dy.sum(axis=(0, 2))}                                  # dbo = sum_p dY_p  (C,)
    dot = ap["o.w"].T @ dy                                            # dO^T = Wo^T dY^T  (N, d, D)
    delta = np.sum(dot * ot, axis=1, keepdims=True)                   # <dO_p, O_p>       (N, 1, D)
    qt_lse, kt1 = _with_row(qt, -lse), _with_row(kt, 1)               # [Q; -lse], [K; 1] (N, d + 1, D)
    dot_delta = _with_row(dot, -delta)                                # [dO; -delta]      (N, d + 1, D)
    tiles = query_tiles(D, QUERY_TILE)
    diag = key_bias(min(QUERY_TILE, D), include_self, qt.dtype)
    dz = np.zeros((N, 3 * d, D), dtype=qt.dtype)                      # [dQ; dK; dV]^T, as qkv
    dqt, dkt, dvt = dz[:, :d], dz[:, d:2 * d], dz[:, 2 * d:]
    for n0 in range(0, N, IMAGE_GROUP):
        n = slice(n0, n0 + IMAGE_GROUP)
        for r0, r1 in tiles:
            a = _tile_product(qt_lse[n], kt1[n], r0, r1, diag)           # S - lse      (g, R, r1)
            np.exp(a, out=a)                                             # A[r0:r1, :r1] = exp(S - lse)
            dvt[n, :, :r1] += dot[n, :, r0:r1] @ a                       # dV^T = dO^T A
            ds = _tile_product(dot_delta[n], vt1[n], r0, r1)             # dA - delta = dO V^T - delta
            ds *= a                                                      # dS = A * (dA - delta)
            dqt[n, :, r0:r1] = kt[n, :, :r1] @ ds.transpose(0, 2, 1)     # dQ^T = K^T dS^T (/ sqrt(d) below)
            dkt[n, :, :r1] += qt[n, :, r0:r1] @ ds                       # dK^T = Q^T dS / sqrt(d) (qt has it)
    dqt /= np.sqrt(qt.dtype.type(d))
    g["q.b"] = dqt.sum(axis=(0, 2))                                   # dbq = sum_p dQ_p  (d,)
    g["v.b"] = dvt.sum(axis=(0, 2))                                   # (no key bias)
    dw = np.matmul(dz, u.transpose(0, 2, 1)).sum(axis=0)              # d[Wq; Wk; Wv] = dZ^T U  (3d, C)
    g["q.w"], g["k.w"], g["v.w"] = dw[:d], dw[d:2 * d], dw[2 * d:]
    w_qkv = np.concatenate([ap["q.w"], ap["k.w"], ap["v.w"]])         # (3d, C)
    dx = (w_qkv.T @ dz).reshape(N, C, H, W)                           # dU = dQ Wq + dK Wk + dV Wv: summed
    g["pos"] = dx.sum(axis=0)                                         # dE = sum_n dU     (C, H, W)
    return dx, g


# ----------------------------------------------------------------------------------
# One position at a time, for the cached sampler
# ----------------------------------------------------------------------------------

def attend_one_position(ap, keys, values, h_p, i, j, W):
    """The attention block's output Y_p (n, C) at one position p = i W + j, from the
    features there h_p (n, C); stores K_p, V_p into keys, values (n, D, d) first, then
    attends over the cached q <= p."""
    p = i * W + j
    u = h_p + ap["pos"][:, i, j]                                                      # (n, C)
    q = u @ ap["q.w"].T + ap["q.b"]                                                   # (n, d)
    keys[:, p] = u @ ap["k.w"].T
    values[:, p] = u @ ap["v.w"].T + ap["v.b"]
    s = np.einsum("ne,nqe->nq", q, keys[:, :p + 1]) / np.sqrt(q.dtype.type(q.shape[1]))   # (n, p + 1)
    a = softmax(s, axis=1)
    o = np.einsum("nq,nqe->ne", a, values[:, :p + 1])                                 # (n, d)
    return o @ ap["o.w"].T + ap["o.b"]                                                # (n, C)
