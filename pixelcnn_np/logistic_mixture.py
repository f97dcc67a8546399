"""The discretized logistic mixture likelihood of PixelCNN++ (Salimans et al., 2017).

The 256-way softmax gives every 8-bit value its own logit: 256 numbers per pixel, and
nothing tells the model that 127 and 128 are neighbours. PixelCNN++ instead puts a
continuous density on the intensity axis and integrates it over each value's bin:

    pixel value v in {0, ..., 255}  ->  x = 2 v / 255 - 1 in [-1, 1], bin [x - h, x + h],
                                        h = 1 / 255 (half the distance between values)

    p(v) = sum_k pi_k [ sigmoid((x + h - mu_k) / s_k) - sigmoid((x - h - mu_k) / s_k) ]

a mixture of K logistic distributions (mean mu_k, scale s_k, weight pi_k = softmax of
K logits), whose CDF is the sigmoid. The two edge bins take the tails: v = 0 gets all
the mass below -1 + h, v = 255 all the mass above 1 - h, so the 256 probabilities sum
to exactly 1. Per pixel the network emits 3K numbers instead of 256 (K = 5: 15):

    logits (N, 3K, H, W)  =  [ pi logits (K) | means mu (K) | log scales log s (K) ]

## A log-probability that never cancels

With a = (x + h - mu) / s and b = (x - h - mu) / s (so a - b = d = 2h / s > 0), the
bin's mass is sigmoid(a) - sigmoid(b). Subtracting two numbers near 1 (a bin far in the
right tail) or near 0 loses every digit; PixelCNN++ switches to the density at the
bin's centre when the difference is below 1e-5. An exact identity needs no switch:

    sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^-(a - b))

    log P_k = log sigmoid(a) + log sigmoid(-b) + log(-expm1(-d))       (middle bins)
    log P_k = log sigmoid(a)                                            (v = 0)
    log P_k = log sigmoid(-b)                                           (v = 255)

with log sigmoid(t) = -softplus(-t), computed as min(t, 0) - log1p(e^-|t|): every term
is finite and accurate for any a, b and d (`log_bin_mass`). The pixel's log-probability
is log p(v) = logsumexp_k (log pi_k + log P_k), log pi = log_softmax(pi logits).

## The gradient, by hand

With L_k = log P_k and r_k = softmax_k(log pi_k + L_k), the component's posterior
responsibility for the pixel, the loss  l = -log p(v)  has

    dl / d(pi logit)_k = pi_k - r_k
    dl / d mu_k        = -r_k dL_k/dmu_k,      dL_k/dmu    = -(sigmoid(-a) - sigmoid(b)) / s
    dl / d log s_k     = -r_k dL_k/dlog s_k,   dL_k/dlog s = -a sigmoid(-a) + b sigmoid(b) - d / expm1(d)

using d log sigmoid(t)/dt = sigmoid(-t), da/dmu = db/dmu = -1/s, and da/dlog s = -a,
db/dlog s = -b, dd/dlog s = -d. At v = 0 only the a term is there, at v = 255 only
the b term (`bin_mass_grads`). As in PixelCNN++, log s is clamped below at
LOG_SCALE_MIN = -7, i.e. s >= e^-7 = 9.1e-4. The half bin h = 1/255 is then 4.3 s, so a
component centred on a value can still put sigmoid(4.3) - sigmoid(-4.3) = 97% of its mass
in that one bin: the clamp costs nothing a pixel needs. The loss uses the clamped value,
so its gradient is zero where the clamp is active, exactly the derivative of the
function computed.

## Sampling

`pixel_probabilities` gives the 256 probabilities of one pixel; the samplers draw from
them by the inverse CDF with one uniform per pixel, as they do for the softmax
(sampling.py). That is the same distribution as PixelCNN++'s two-step draw (choose a
component, add logistic noise mu + s log(u / (1 - u)), round to the nearest value, clip
the tails to 0 and 255), which `sample_by_components` implements for comparison.

This module covers one channel (grey images). The slow reference `nll_reference`
computes each bin's mass as the plain difference of sigmoids in float64.
"""

import numpy as np

from .validation import check_float_array

HALF_BIN = 1.0 / 255.0          # h: half the distance between neighbouring values on [-1, 1]
LOG_SCALE_MIN = -7.0            # PixelCNN++'s clamp of log s
N_VALUES = 256


def out_channels(n_mix):
    """3K outputs per pixel: K mixture logits, K means, K log scales."""
    return 3 * n_mix


def split_logits(logits, n_mix):
    """(N, 3K, H, W) -> pi logits, mu, raw log s, each (N, K, H, W)."""
    check_float_array("logits", logits, ndim=4)
    if logits.shape[1] != 3 * n_mix:
        raise ValueError(f"a {n_mix}-component logistic mixture needs {3 * n_mix} channels per pixel, "
                         f"got logits of shape {logits.shape}")
    return logits[:, :n_mix], logits[:, n_mix:2 * n_mix], logits[:, 2 * n_mix:]


def value_to_x(values, dtype=np.float64):
    """Pixel values 0..255 -> bin centres x = 2 v / 255 - 1 in [-1, 1]."""
    return np.asarray(values).astype(dtype) * (2.0 / 255.0) - 1.0


def log_sigmoid(t):
    """log sigmoid(t) = -softplus(-t) = min(t, 0) - log1p(e^-|t|), stable for any t."""
    return np.minimum(t, 0) - np.log1p(np.exp(-np.abs(t)))


def _sigmoid(t):
    return np.tanh(t * 0.5) * 0.5 + 0.5


def _bins(x, mu, log_s):
    """a, b, d and 1/s for bin centre x (N, 1, H, W) against each component (N, K, H, W)."""
    log_s = np.maximum(log_s, LOG_SCALE_MIN)
    inv_s = np.exp(-log_s)
    a = (x - mu + HALF_BIN) * inv_s
    b = (x - mu - HALF_BIN) * inv_s
    d = (2 * HALF_BIN) * inv_s
    return a, b, d, inv_s


def log_bin_mass(values, mu, log_s):
    """log P_k(v): the log mass of value v's bin under each logistic component.

    values (N, H, W) integers 0..255; mu, log_s (N, K, H, W) -> (N, K, H, W)."""
    v = np.asarray(values)[:, None]
    a, b, d, _ = _bins(value_to_x(v, mu.dtype), mu, log_s)
    middle = log_sigmoid(a) + log_sigmoid(-b) + np.log(-np.expm1(-d))
    return np.where(v == 0, log_sigmoid(a), np.where(v == N_VALUES - 1, log_sigmoid(-b), middle))


def bin_mass_grads(values, mu, log_s):
    """dL_k/dmu and dL_k/dlog s (before the clamp's zero), L_k = log P_k(v); each (N, K, H, W)."""
    v = np.asarray(values)[:, None]
    a, b, d, inv_s = _bins(value_to_x(v, mu.dtype), mu, log_s)
    s_na, s_b = _sigmoid(-a), _sigmoid(b)                       # d log sigmoid(a)/da, -d log sigmoid(-b)/db
    low, high = v == 0, v == N_VALUES - 1
    ga = np.where(high, 0.0, s_na)                              # dL/da
    gb = np.where(low, 0.0, -s_b)                               # dL/db
    gd = np.where(low | high, 0.0, -1.0 / np.expm1(d))          # dL/dd ... times dd/dlog s = -d below
    dmu = -(ga + gb) * inv_s
    dlog_s = -a * ga - b * gb + gd * d
    dlog_s = np.where(log_s > LOG_SCALE_MIN, dlog_s, 0.0)      # the clamp: flat below LOG_SCALE_MIN
    return dmu, dlog_s


def _log_softmax(z, axis=1):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _check_values(values, shape):
    values = np.asarray(values)
    N, _, H, W = shape
    if values.shape != (N, H, W):
        raise ValueError(f"pixel values must have shape {(N, H, W)}, got {values.shape}")
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"pixel values must be integers 0..255, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"pixel values must lie in 0..255, got range [{values.min()}, {values.max()}]")
    return values


def per_pixel_nll(logits, values, n_mix):
    """-log p(v) of every pixel in nats: logits (N, 3K, H, W), values (N, H, W) -> (N, H, W)."""
    pi, mu, log_s = split_logits(logits, n_mix)
    values = _check_values(values, logits.shape)
    joint = _log_softmax(pi) + log_bin_mass(values, mu, log_s)             # (N, K, H, W)
    m = joint.max(axis=1, keepdims=True)
    return -(m[:, 0] + np.log(np.exp(joint - m).sum(axis=1)))              # (N, H, W)


def mixture_nll(logits, values, n_mix):
    """Mean NLL in nats/pixel and its gradient.

    logits (N, 3K, H, W) float, values (N, H, W) integers 0..255
    -> loss (float), dlogits (N, 3K, H, W) = [pi - r | -r dL/dmu | -r dL/dlog s] / count.
    """
    pi, mu, log_s = split_logits(logits, n_mix)
    values = _check_values(values, logits.shape)
    log_pi = _log_softmax(pi)                                              # (N, K, H, W)
    joint = log_pi + log_bin_mass(values, mu, log_s)                       # log pi_k + L_k
    m = joint.max(axis=1, keepdims=True)
    log_p = m[:, 0] + np.log(np.exp(joint - m).sum(axis=1))                # (N, H, W)
    r = np.exp(joint - log_p[:, None])                                     # responsibilities (N, K, H, W)
    dmu, dlog_s = bin_mass_grads(values, mu, log_s)
    count = values.size
    dlogits = np.concatenate([np.exp(log_pi) - r, -r * dmu, -r * dlog_s], axis=1) / count
    return float(-log_p.sum() / count), dlogits.astype(logits.dtype, copy=False)


def pixel_probabilities(logits_p, n_mix, temperature=1.0):
    """The 256 probabilities of one pixel per image: logits_p (n, 3K) -> (n, 256).

    Temperature T reweights them as p^(1/T), renormalised (as softmax(z / T) does for
    the 256-way softmax)."""
    z = np.asarray(logits_p, dtype=np.float64)
    n = len(z)
    values = np.broadcast_to(np.arange(N_VALUES), (n, N_VALUES))[:, :, None]        # (n, 256, 1)
    block = np.broadcast_to(z[:, :, None, None], (n, 3 * n_mix, N_VALUES, 1))       # one "image" per value
    logp = -per_pixel_nll(np.ascontiguousarray(block), values, n_mix)[:, :, 0]       # (n, 256)
    logp = logp / temperature
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def draw_pixel(logits_p, u, n_mix, temperature=1.0):
    """Inverse-CDF draw: logits_p (n, 3K), u (n,) uniforms on [0, 1) -> values (n,) uint8."""
    cdf = np.cumsum(pixel_probabilities(logits_p, n_mix, temperature), axis=1)
    return np.minimum((np.asarray(u)[:, None] >= cdf).sum(axis=1), N_VALUES - 1).astype(np.uint8)


def sample_by_components(logits_p, n_mix, rng):
    """PixelCNN++'s two-step draw (a comparison for `draw_pixel`, same distribution):
    k ~ softmax(pi), x = mu_k + s_k log(u / (1 - u)), v = the value whose bin holds x."""
    z = np.asarray(logits_p, dtype=np.float64)
    pi, mu, log_s = z[:, :n_mix], z[:, n_mix:2 * n_mix], np.maximum(z[:, 2 * n_mix:], LOG_SCALE_MIN)
    p = np.exp(_log_softmax(pi))
    k = (rng.random(len(z))[:, None] >= np.cumsum(p, axis=1)).sum(axis=1).clip(0, n_mix - 1)
    rows = np.arange(len(z))
    u = rng.random(len(z)).clip(1e-12, 1 - 1e-12)
    x = mu[rows, k] + np.exp(log_s[rows, k]) * (np.log(u) - np.log1p(-u))
    return np.clip(np.rint((x + 1) * 127.5), 0, N_VALUES - 1).astype(np.uint8)


def nll_reference(logits, values, n_mix):
    """The slow, obvious reference: each bin's mass as a plain difference of sigmoids
    in float64, the tails as 1 - CDF and CDF, one pixel at a time. (N, H, W) nats.
    Accurate only where the difference does not cancel (moderate a, b)."""
    z = np.asarray(logits, dtype=np.float64)
    N, _, H, W = z.shape
    out = np.empty((N, H, W))
    for n in range(N):
        for i in range(H):
            for j in range(W):
                pi, mu, log_s = z[n, :n_mix, i, j], z[n, n_mix:2 * n_mix, i, j], z[n, 2 * n_mix:, i, j]
                w = np.exp(pi - pi.max())
                w /= w.sum()
                s = np.exp(np.maximum(log_s, LOG_SCALE_MIN))
                v = int(values[n, i, j])
                x = 2 * v / 255 - 1
                cdf = lambda t: 1 / (1 + np.exp(-(t - mu) / s))   # noqa: E731
                upper = 1.0 if v == 255 else cdf(x + HALF_BIN)
                lower = 0.0 if v == 0 else cdf(x - HALF_BIN)
                out[n, i, j] = -np.log(np.sum(w * (upper - lower)))
    return out
