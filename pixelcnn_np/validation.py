"""Argument checks shared by the public functions.

Every public layer validates its inputs here, in plain Python, *before* any Numba
kernel runs, so a wrong shape or dtype gives a message naming the argument, the
expected value and the actual value instead of a crash deep inside a kernel.
"""

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def check_float_array(name, a, ndim=None):
    """`a` must be a float32/float64 ndarray with `ndim` dimensions."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape} ({a.ndim}-D)")


def check_same_dtype(**arrays):
    """All arrays must share one dtype (mixing float32 and float64 would silently upcast)."""
    dtypes = {k: v.dtype for k, v in arrays.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in dtypes.items())
        raise TypeError(f"arrays must share one dtype, got {listed}")


def check_finite(name, a):
    if not np.isfinite(a).all():
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_input(x, config):
    """The network input must be a finite float array (N, c, H, W) of the config's size
    (c = 1 grey, 3 colour: config["channels"])."""
    check_float_array("x", x, ndim=4)
    expected = (config.get("channels", 1), config["height"], config["width"])
    if x.shape[1:] != expected:
        raise ValueError(f"x must have shape (N, {expected[0]}, {expected[1]}, {expected[2]}) for this model, "
                         f"got {x.shape}")
    check_finite("x", x)


def check_kernel_reach(config):
    """Refuse kernels and dilations that reach past the image in every direction.

    A K x K kernel with dilation d reads up to r = (K // 2) d pixels from the output
    pixel, up and to both sides (mask A and B alike). When r >= H and r >= W its
    outermost ring of taps can only ever read the zero padding: the weights there get no
    gradient and do nothing, but every tap still costs its gather and its multiply-adds
    (kernel_size 99 on 28 x 28 took over ten minutes a step). The largest kernel that
    still reads the image at dilation d is 2 ((max(H, W) - 1) // d) + 1.

    Reads "kernel_size", "first_kernel_size" (dilation 1) and "dilations" (the
    kernel_size layers) from the config; raises a one-line ValueError naming the key.
    """
    H, W = config["height"], config["width"]
    last = max(H, W) - 1                               # the farthest a tap can be and still read the image

    def refuse(what, K, d, fix):
        raise ValueError(f"{what}: a {K}x{K} kernel with dilation {d} reaches {(K // 2) * d} pixels from the "
                         f"centre, past the {H}x{W} image in every direction, so its outer taps would only "
                         f"read zero padding, at full cost; {fix}")

    for key in ("first_kernel_size", "kernel_size"):
        K = config.get(key, 1)
        if K // 2 > last:
            refuse(f"config[{key!r}] = {K}", K, 1, f"use {key} <= {2 * last + 1}")
    K = config.get("kernel_size", 1)
    for d in config.get("dilations", []):
        if K > 1 and (K // 2) * d > last:
            refuse(f"config['dilations'] has {d}", K, d, f"use dilations <= {last // (K // 2)} with kernel_size {K}")
