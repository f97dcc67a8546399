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

Colour: one head per colour, strict keys
----------------------------------------
A colour model (colour.py) splits every layer's channels into R, G and B groups and
keeps one invariant: a group-g feature at p depends on the pixels x_<p and on the
colours of p before g, nothing else. That is what lets the head factorise

    p(x_p) = p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p).

The grey block breaks it twice. Its query at p reads every channel of p, so the R
output at p would see the G and B features of p, which know R_p (R_p would predict
itself); and its key and value at p itself carry those same features. The colour block
(colours = 3) keeps the invariant with three changes, and nothing else differs:

* three heads, one per colour: the d key channels are split into groups too
  (masks.channel_groups(d), head g = group g, d_g channels each), and head g has its
  own softmax, S^g = Q^g K^g^T / sqrt(d_g). Its query reads only the input groups
  <= g: Wq is multiplied by the mask Mq (d, C), Mq[e, c] = 1 if group(c) <= head(e).
  So Q^g_p depends on x_<p and the colours of p before g.
* strict keys, keys(p) = {q < p} (include_self=False): the keys and values read every
  channel, but only at earlier positions, whose features depend on x_<q, x_q only,
  all before p. Head g's output O^g_p then depends on x_<p and the colours of p
  before g -- exactly what a group-g feature may know.
* the output projection lets output group g read heads <= g only: Wo times the mask
  Mo (C, d), Mo[c, e] = 1 if head(e) <= group(c). Y_p in group g then reads heads
  0..g, each allowed for g. The residual h + Y adds channel to channel, same group.

The masked entries of Wq and Wo get a zero gradient (dWq = Mq * (dQ^T U), dWo = Mo *
(dY^T O)), so they stay zero under Adam; `colour_masks` gives Mq and Mo. With one
colour group (grey) both masks are all ones and there is one head: the block above,
bit for bit. Why not keys q <= p with the key at p cut to groups <= g? It would need a
second key and value at every position (the one p sees of itself, the one later
queries see), a special diagonal in every tile; the strict set loses nothing the
block could use safely: what p knows of itself is already in its query and in the
skip path h. tests/test_attention.py shows the unrestricted query, the inclusive key
set and an unmasked output projection each leaking a colour of p into an earlier one.

One position at a time
----------------------
The cached sampler (sampling.sample_cached) needs the block at one position p only,
once the features at every q <= p are known: `attend_one_position` stores K_p and V_p
into per-block caches of the keys and values and attends over the cached q <= p
(q < p with include_self=False), the same sums as above for one row of S.
"""

import math

import numpy as np

from .activations import softmax
from .masks import channel_groups
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


def colour_masks(C, d, colours=1):
    """The masks of a block with `colours` colour groups (1 grey, 3 RGB), one head per
    colour: {"q.w": Mq (d, C), "o.w": Mo (C, d)}, float64 0/1 arrays.
    head = channel_groups(d), group = channel_groups(C):

        Mq[e, c] = 1 if group[c] <= head[e]      head g's query reads groups R..g
        Mo[c, e] = 1 if head[e] <= group[c]      output group g reads heads R..g

    With colours = 1 both are all ones (one head, nothing masked)."""
    head, group = channel_groups(d, colours), channel_groups(C, colours)
    return {"q.w": (group[None, :] <= head[:, None]).astype(np.float64),
            "o.w": (head[None, :] <= group[:, None]).astype(np.float64)}


def head_slices(d, colours=1):
    """[slice of head 0's key channels, ...]: one head per colour group, contiguous
    (channel_groups(d, colours)); grey: [slice(0, d)], the single head."""
    head = channel_groups(d, colours)
    return [slice(int(np.searchsorted(head, g)), int(np.searchsorted(head, g, side="right")))
            for g in range(colours)]


def _check_attention_params(x, ap, colours):
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
    if colours not in (1, 3) or min(C, d) < colours:
        raise ValueError(f"colours must be 1 or 3, with at least that many channels and key channels; "
                         f"got colours={colours!r}, C={C}, d={d}")


def causal_attention_reference(x, ap, include_self=True, colours=1, masks=None):
    """Slow, obvious: the equations of the module docstring with loops over images,
    queries, heads and keys. x (N, C, H, W), ap the dict of ATTENTION_PARTS -> y (N, C, H, W).
    colours: 1 (one head) or 3 (one head per colour, Wq and Wo masked); masks overrides
    `colour_masks` (the tests' deliberately wrong masks)."""
    N, C, H, W = x.shape
    d = ap["q.w"].shape[0]
    m = colour_masks(C, d, colours) if masks is None else masks
    wq, wo = ap["q.w"] * m["q.w"], ap["o.w"] * m["o.w"]
    y = np.zeros_like(x)
    for n in range(N):
        u = [x[n, :, i, j] + ap["pos"][:, i, j] for i in range(H) for j in range(W)]   # D vectors (C,)
        for p in range(H * W):
            keys = range(p + 1) if include_self else range(p)
            o_p = np.zeros(d, dtype=x.dtype)
            for e in head_slices(d, colours):                                            # head g: channels e
                q_p = wq[e] @ u[p] + ap["q.b"][e]                                        # (d_g,)
                scores = [q_p @ (ap["k.w"][e] @ u[q]) / math.sqrt(e.stop - e.start) for q in keys]
                if scores:
                    mx = max(scores)
                    ex = [math.exp(s - mx) for s in scores]
                    for q, e_q in zip(keys, ex):
                        o_p[e] += e_q / sum(ex) * (ap["v.w"][e] @ u[q] + ap["v.b"][e])   # A^g[p, q] V^g_q
            i, j = divmod(p, W)
            y[n, :, i, j] = wo @ o_p + ap["o.b"]
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


def causal_attention_forward(x, ap, include_self=True, colours=1, masks=None):
    """Causal self-attention over raster positions (see the module docstring).

    x (N, C, H, W) float; ap: {"pos" (C, H, W), "q.w" (d, C), "q.b" (d,), "k.w" (d, C),
    "v.w" (d, C), "v.b" (d,), "o.w" (C, d), "o.b" (C,)}, of x's dtype.
    include_self: may the query at p see the key at p? (True after a mask-A layer in
    grey; a colour block needs False.)
    colours: 1, one head over all d key channels; 3, one head per colour group, Wq and
    Wo under `colour_masks(C, d, 3)` (masks overrides them: the tests' wrong masks).
    -> y (N, C, H, W), cache. y is the attention output only; add x for the residual.

    The engine keeps the channels first, as x is: Q^T, K^T, V^T are (N, d, D), so the
    projections are one product Wqkv U and no (N, C, D) array is ever transposed. The
    (D, D) part runs IMAGE_GROUP images, one head and one tile of queries at a time
    (`query_tiles`) and is not kept: the cache keeps, per head and query, the log of its
    softmax denominator, lse_p = log sum_{q in keys(p)} exp(S[p, q]), from which the
    backward pass recomputes A tile by tile (A = exp(S - lse)).
    """
    _check_attention_params(x, ap, colours)
    N, C, H, W = x.shape
    D = H * W
    d = ap["q.w"].shape[0]
    m = colour_masks(C, d, colours) if masks is None else masks
    wq, wo = ap["q.w"] * m["q.w"].astype(x.dtype), ap["o.w"] * m["o.w"].astype(x.dtype)   # grey: times 1, exact
    heads = head_slices(d, colours)
    scale = np.concatenate([np.full(e.stop - e.start, e.stop - e.start) for e in heads])
    scale = np.sqrt(scale.astype(x.dtype))[:, None]                   # sqrt(d_g) of each key channel's head (d, 1)
    u = (x + ap["pos"]).reshape(N, C, D)                              # U^T (N, C, D)
    w_qkv = np.concatenate([wq, ap["k.w"], ap["v.w"]])                # (3d, C)
    qkv = w_qkv @ u                                                   # [Q; K; V]^T without biases (N, 3d, D)
    qt = (qkv[:, :d] + ap["q.b"][:, None]) / scale                    # Q^T / sqrt(d_g): S^g = qs K^T  (N, d, D)
    kt = qkv[:, d:2 * d]                                              # K^T (N, d, D)
    vt = qkv[:, 2 * d:] + ap["v.b"][:, None]                          # V^T (N, d, D)
    tiles = query_tiles(D, QUERY_TILE)
    diag = key_bias(min(QUERY_TILE, D), include_self, x.dtype)        # (R, R) 0 or -inf
    ot = np.empty((N, d, D), dtype=x.dtype)                           # O^T
    lse = np.empty((N, len(heads), D), dtype=x.dtype)                 # log softmax denominators, per head
    for h, e in enumerate(heads):                                     # head h: key channels e
        vt1 = _with_row(vt[:, e], 1)                                  # [V^T; 1] of the head (N, d_g + 1, D)
        dh = e.stop - e.start
        for n0 in range(0, N, IMAGE_GROUP):
            g = slice(n0, n0 + IMAGE_GROUP)
            for r0, r1 in tiles:
                s = _tile_product(qt[g, e], kt[g, e], r0, r1, diag)   # (g, R, r1) S[r0:r1, :r1]
                mx = s.max(axis=2, keepdims=True)                     # (g, R, 1) row maxima
                mx[mx == -np.inf] = 0                                 # a row with no key (p = 0, strict)
                s -= mx                                               # stable: every exponent <= 0
                np.exp(s, out=s)                                      # E = exp(S - m), 0 at masked keys
                oz = vt1[g, :, :r1] @ s.transpose(0, 2, 1)            # [V; 1]^T E^T = [(E V)^T; z^T] (g, d_g + 1, R)
                z = oz[:, dh:]                                        # (g, 1, R) softmax denominators
                empty = z == 0                                        # no key: A = 0, O = 0
                z[empty] = 1
                ot[g, e, r0:r1] = oz[:, :dh] / z                      # O = A V = E V / z
                # no key: lse = NO_KEY_LSE, so exp(S - lse) = 0 in the backward pass (a finite
                # stand-in for +inf: BLAS may multiply an infinity by the zeros it pads with)
                lse[g, h:h + 1, r0:r1] = np.where(empty, NO_KEY_LSE, mx.transpose(0, 2, 1) + np.log(z))
    y = wo @ ot + ap["o.b"][:, None]                                  # Y^T = (Mo * Wo) O^T + bo   (N, C, D)
    return y.reshape(N, C, H, W), (u, qt, kt, vt, ot, lse, include_self, heads, scale, w_qkv, wo, m, x.shape)


def causal_attention_backward(dy, cache):
    """dy (N, C, H, W) -> (dx (N, C, H, W), grads {name: array} over ATTENTION_PARTS).

    The softmax backward dS = A * (dA - rowsum(A * dA)) uses rowsum(A * dA)_p =
    sum_q A[p, q] <dO_p, V_q> = <dO_p, O_p> =: delta_p (per head: over its channels),
    one (N, D) product instead of a pass over the tile. Channels first throughout, as in
    the forward pass. dWq and dWo are masked like Wq and Wo (all ones in grey)."""
    u, qt, kt, vt, ot, lse, include_self, heads, scale, w_qkv, wo, m, shape = cache
    N, C, H, W = shape
    D, d = H * W, qt.shape[1]
    dy = dy.reshape(N, C, D)                                          # dY^T (N, C, D)
    g = {"o.w": np.matmul(dy, ot.transpose(0, 2, 1)).sum(axis=0) * m["o.w"].astype(dy.dtype),  # dWo = Mo * dY^T O  (C, d)
         "o.b": dy.sum(axis=(0, 2))}                                  # dbo = sum_p dY_p  (C,)
    dot = wo.T @ dy                                                   # dO^T = Wo^T dY^T  (N, d, D)
    tiles = query_tiles(D, QUERY_TILE)
    diag = key_bias(min(QUERY_TILE, D), include_self, qt.dtype)
    dz = np.zeros((N, 3 * d, D), dtype=qt.dtype)                      # [dQ; dK; dV]^T, as qkv
    dqt, dkt, dvt = dz[:, :d], dz[:, d:2 * d], dz[:, 2 * d:]
    for h, e in enumerate(heads):                                     # head h: key channels e
        delta = np.sum(dot[:, e] * ot[:, e], axis=1, keepdims=True)   # <dO_p, O_p> over the head (N, 1, D)
        qt_lse, kt1 = _with_row(qt[:, e], -lse[:, h:h + 1]), _with_row(kt[:, e], 1)   # [Q; -lse], [K; 1]
        dot_delta, vt1 = _with_row(dot[:, e], -delta), _with_row(vt[:, e], 1)         # [dO; -delta], [V; 1]
        for n0 in range(0, N, IMAGE_GROUP):
            n = slice(n0, n0 + IMAGE_GROUP)
            for r0, r1 in tiles:
                a = _tile_product(qt_lse[n], kt1[n], r0, r1, diag)          # S - lse      (g, R, r1)
                np.exp(a, out=a)                                            # A[r0:r1, :r1] = exp(S - lse)
                dvt[n, e, :r1] += dot[n, e, r0:r1] @ a                      # dV^T = dO^T A
                ds = _tile_product(dot_delta[n], vt1[n], r0, r1)            # dA - delta = dO V^T - delta
                ds *= a                                                     # dS = A * (dA - delta)
                dqt[n, e, r0:r1] = kt[n, e, :r1] @ ds.transpose(0, 2, 1)    # dQ^T = K^T dS^T (/ sqrt(d_g) below)
                dkt[n, e, :r1] += qt[n, e, r0:r1] @ ds                      # dK^T = Q^T dS / sqrt(d_g) (qt has it)
    dqt /= scale
    g["q.b"] = dqt.sum(axis=(0, 2))                                   # dbq = sum_p dQ_p  (d,)
    g["v.b"] = dvt.sum(axis=(0, 2))                                   # (no key bias)
    dw = np.matmul(dz, u.transpose(0, 2, 1)).sum(axis=0)              # d[Wq; Wk; Wv] = dZ^T U  (3d, C)
    g["q.w"], g["k.w"], g["v.w"] = dw[:d] * m["q.w"].astype(dw.dtype), dw[d:2 * d], dw[2 * d:]   # dWq = Mq * dQ^T U
    dx = (w_qkv.T @ dz).reshape(N, C, H, W)                           # dU = dQ Wq + dK Wk + dV Wv: summed
    g["pos"] = dx.sum(axis=0)                                         # dE = sum_n dU     (C, H, W)
    return dx, g


# ----------------------------------------------------------------------------------
# One position at a time, for the cached sampler
# ----------------------------------------------------------------------------------

def attend_one_position(ap, keys, values, h_p, i, j, W, include_self=True, colours=1):
    """The attention block's output Y_p (n, C) at one position p = i W + j, from the
    features there h_p (n, C); stores K_p, V_p into keys, values (n, D, d) first, then
    attends over the cached q <= p (q < p with include_self=False), head by head.
    In colour the sampler calls it once per colour of p, h_p changing between calls:
    each call recomputes K_p, V_p, and the last call's are the ones later queries read
    (a feature at p never depends on B_p, so they are final)."""
    p = i * W + j
    C, d = h_p.shape[1], ap["q.w"].shape[0]
    m = colour_masks(C, d, colours)
    u = h_p + ap["pos"][:, i, j]                                                      # (n, C)
    q = u @ (ap["q.w"] * m["q.w"].astype(u.dtype)).T + ap["q.b"]                      # (n, d)
    keys[:, p] = u @ ap["k.w"].T
    values[:, p] = u @ ap["v.w"].T + ap["v.b"]
    seen = p + 1 if include_self else p                                               # keys 0 .. seen - 1
    o = np.zeros_like(q)                                                              # (n, d); no key: O_p = 0
    for e in head_slices(d, colours) if seen else []:
        s = np.einsum("ne,nqe->nq", q[:, e], keys[:, :seen, e]) / np.sqrt(q.dtype.type(e.stop - e.start))  # (n, seen)
        a = softmax(s, axis=1)
        o[:, e] = np.einsum("nq,nqe->ne", a, values[:, :seen, e])                    # (n, d_g)
    return o @ (ap["o.w"] * m["o.w"].astype(o.dtype)).T + ap["o.b"]                  # (n, C)
