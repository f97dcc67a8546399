"""How much memory a training step, a forward pass or sampling will need, before it runs.

A run that cannot fit should be refused with a number, not killed by the operating
system partway (`--batch-size 100000` was, at 23.5 GB, after 133 s, without a word).
So the scripts estimate first and compare with what the machine has (`check_fits`).

What a training step holds at its peak (train.training_steps)
-------------------------------------------------------------
With P bytes of parameters (S numbers of `itemsize` bytes), batch N:

    parameters, Adam's m and v        3 P   always
    gradients                         2 P   the last step's are still bound while the
                                            backward pass builds the new ones
    the step's activations            N a   its forward cache, every temporary map, the
                                            logits and the loss's gradient at their highest
    the last step's leftovers         N l   its cache, logits and dlogits: `logits, cache =
                                            forward(...)` frees the old ones only once the
                                            new ones exist
    column buffers                    B     conv.py's gather workspace, one per thread

    a = max(l + f, s + g), with per image l those leftovers, f the forward pass's peak, s
    the peak of forward, loss and backward together (the old cache is gone by then, the old
    dlogits, g bytes like the logits, not before the new loss), and

    peak = max(N a + 5 P + B,         forward, loss and backward
               N c + 7 P + 3 L + B)   the Adam update: old and new parameters, m and v,
                                      the gradients, and three temporaries of the largest
                                      parameter (L bytes)

(The last step's leftovers are the price of the loop's plain `logits, cache = ...`: were
they dropped after the backward pass, the peak would fall by about N l.)

c (the cache alone), l, g, f and s are *measured*, not guessed. `per_image` runs the
model's own functions on one and on two images, at hidden 1 and at hidden 2, tiny and
fast: c, l and g from the arrays the cache, logits and dlogits hold (`kept_bytes`,
parameters excluded), f and s from tracemalloc's peaks over the forward pass and over
forward, loss and backward. The difference between two images and one drops what does
not grow with the batch (masks, tap lists, the gradients). Every map a model keeps or makes is
(N, C, H, W) with C a constant plus a multiple of the width (1, h, 2 h, 256 logits, ...),
so per image both are a + b h: the two widths give the line, and N images take N times
it. Nothing here knows a model's layers; it uses param_shapes, init_params, forward,
backward and sampler_init, the functions every model provides. tests/test_memory.py
checks the lines against real caches and traced steps of every model in MODELS at other
widths, batches and image sizes.

B, from conv.py's rule: a buffer of max(_CHUNK_ELEMENTS, rows * H * W) elements per
thread and dtype for the largest gather, rows = C * T for a layer with C input channels
and T kept taps (O * T for its input gradient); every gathering layer runs on every
thread of threads.py, and the calling thread keeps one small buffer of its own. (The
probes never see B grow: they reuse the one small buffer their warm-up allocates.)

Calibration: the peak RSS of a fresh process, M (/proc/self/status VmHWM, reset after
compiling at batch 1 and read after two steps of training_steps at batch N, minus the
RSS before them), against the estimate E, on 28 x 28 images, float32, both cores:

    model (default config)   N     M (MB)   E (MB)   E / M
    seed PixelCNN            32      142      178    1.25
                             64      267      316    1.18
                            128      507      593    1.17
    Gated PixelCNN           32      439      458    1.04
                             64      886      909    1.03
    residual PixelCNN        32      235      266    1.13
    8-bit seed PixelCNN      16      133      145    1.09
    dilated PixelCNN         64      244      295    1.21
    attention PixelCNN       32       82       90    1.10

that is M <= E <= 1.25 M. Without ALLOCATOR_SLACK, E matched tracemalloc's peak of the
Gated PixelCNN's arrays to 0.1% and its RSS was 6.5% above both (malloc's slack); the
seed net's RSS stays below its arrays (pages that np.zeros never touches are never
resident). tests/test_memory.py checks M <= E <= 1.3 M on the seed net at N = 32, and
E against tracemalloc on small configs of every model. The scripts refuse when E
exceeds `available_memory()`.

Sampling (sampling.sample, float64 by default) holds the parameters in its dtype twice
(the converted copy and the per-layer plans of the cached sampler), the images, and the
cached sampler's state: kept bytes per image, a + b h again, from `sampler_init`. The
naive sampler runs a forward pass at batch n per pixel instead (`forward_memory`).
"""

import os
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from . import conv, threads
from .models import get_model, image_shape, loss_and_grad, model_input

# malloc keeps some freed memory rather than returning it to the system (per-thread
# arenas, fragmentation), so a process's peak RSS exceeds the peak of its live arrays:
# by up to 6.5% in the calibration below (the Gated PixelCNN, whose traced arrays the
# estimate matched to 0.1%). Every estimate adds this fraction on top.
ALLOCATOR_SLACK = 0.10


class MemoryBudgetError(ValueError):
    """A run would need more memory than the machine has available.

    A ValueError, not a MemoryError: nothing has run out yet. The request (a batch size,
    a width, a number of samples) is refused before anything is allocated, like any other
    setting that cannot work, and the scripts already turn a ValueError from their
    settings into a one-line usage error. A MemoryError says an allocation did fail, and
    code that catches one (checkpoint.py does, for corrupt .npy headers) would misread it.
    """


@dataclass
class MemoryEstimate:
    """An estimate in bytes, by part: {"activations": ..., "parameters, Adam, gradients": ...}."""

    what: str                        # e.g. "a training step at batch 64"
    parts: dict = field(default_factory=dict)

    @property
    def total(self):
        return int(sum(self.parts.values()))

    def __str__(self):
        listed = ", ".join(f"{name} {format_bytes(n)}" for name, n in self.parts.items() if n)
        return f"{self.what}: about {format_bytes(self.total)} ({listed})"


def format_bytes(n):
    """1234567 -> '1.2 MB' (decimal units)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


# ----------------------------------------------------------------------------------
# Per image, measured on the model's own functions
# ----------------------------------------------------------------------------------

def _array_bytes(obj, exclude, seen):
    """Bytes of the distinct arrays reachable in obj (tuples, lists, dicts), each counted
    once through its base array, leaving out the arrays whose id is in `exclude`."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if id(obj) in exclude or id(base) in exclude or id(base) in seen:
            return 0
        seen.add(id(base))
        return base.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_array_bytes(o, exclude, seen) for o in obj)
    if isinstance(obj, dict):
        return sum(_array_bytes(o, exclude, seen) for o in obj.values())
    return 0


def kept_bytes(obj, params):
    """Bytes held by the arrays of `obj` (a cache, a sampler state), parameters excluded."""
    return _array_bytes(obj, {id(p) for p in params.values()}, set())


def _labels(config, n):
    return np.zeros(n, dtype=np.int64) if config.get("n_classes") else None


def _step_probe(model, params, config, n):
    """For n blank images: {"cache": bytes the forward cache keeps, "left": those and the
    logits and their gradient (what a step leaves bound), "logits": the logits alone,
    "forward": traced peak of the forward pass, "step": traced peak of forward, loss and
    backward}."""
    dtype = next(iter(params.values())).dtype
    pixels = np.zeros((n,) + image_shape(config), dtype=np.uint8)  # 0 is a valid binary and 8-bit pixel
    x = model_input(pixels, config, dtype)                          # (n, c, H, W)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        logits, cache = model.forward(params, x, config, labels=_labels(config, n))
        forward_peak = tracemalloc.get_traced_memory()[1] - base
        _, dlogits = loss_and_grad(logits, pixels, config)
        model.backward(dlogits, cache)
        step_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not tracing:
            tracemalloc.stop()
    return {"cache": kept_bytes(cache, params), "left": kept_bytes((cache, logits, dlogits), params),
            "logits": kept_bytes(logits, params), "forward": forward_peak, "step": step_peak}


def _sampler_probe(model, params, config, n):
    dtype = next(iter(params.values())).dtype
    return {"state": kept_bytes(model.sampler_init(params, config, n, dtype, labels=_labels(config, n)), params)}


def per_image(config, dtype=np.float32, probe=_step_probe):
    """{quantity: bytes per image} at config's hidden h, each a + b h, from `probe` run on
    2 images minus 1 image, at hidden h0 and at hidden 2 h0 (see the module docstring):
    h0 = 1, or 3 for a colour model (one channel per colour at least).
    (If tracemalloc is already tracing, its peak is reset by the step probes.)"""
    def run(hidden, n):
        c = dict(config, hidden=hidden)
        model = get_model(c)
        params = model.init_params(c, np.random.default_rng(0), dtype)
        return probe(model, params, c, n)

    h0 = config.get("channels", 1)
    run(2 * h0, 2)              # warm up: compile the kernels, allocate the largest probe's gather buffers
    slopes = []
    for hidden in (h0, 2 * h0):
        one, two = run(hidden, 1), run(hidden, 2)
        slopes.append({k: two[k] - one[k] for k in one})
    h = config["hidden"]
    return {k: max(0, slopes[0][k] + (slopes[1][k] - slopes[0][k]) * (h - h0) / h0) for k in slopes[0]}


def cache_bytes_per_image(config, dtype=np.float32):
    """Bytes one image's forward pass keeps in its cache for the backward pass."""
    return per_image(config, dtype)["cache"]


# ----------------------------------------------------------------------------------
# From the shapes alone: parameters and the conv engine's workspace
# ----------------------------------------------------------------------------------

def _shapes(config):
    return list(get_model(config).param_shapes(config).values())


def parameter_count(config):
    return int(sum(np.prod(s, dtype=np.int64) for s in _shapes(config)))


def workspace_bytes(config, dtype=np.float32, n_threads=None):
    """conv.py's column buffers: max(_CHUNK_ELEMENTS, rows * H * W) elements per thread
    for the largest gather of the threaded layers and of the others (module docstring).
    T, the kept taps of a K x K kernel, is bounded by the taps at and above its centre
    row, (K // 2 + 1) K, which every causal mask here keeps at most."""
    n_threads = threads.n_threads() if n_threads is None else n_threads
    hw = config["height"] * config["width"]
    largest = 0                                            # the largest gather of any layer
    for shape in _shapes(config):
        if len(shape) != 4 or shape[2] * shape[3] == 1:    # matrices and 1x1 convs gather nothing
            continue
        O, C, KH, KW = shape
        taps = (KH // 2 + 1) * KW
        for rows in (C * taps, O * taps):                  # forward and dw; dx
            largest = max(largest, rows * hw)
    elements = conv._CHUNK_ELEMENTS                        # the calling thread's own buffer
    if largest:
        elements += n_threads * max(conv._CHUNK_ELEMENTS, largest)   # one per thread of threads.py
    return elements * np.dtype(dtype).itemsize


# ----------------------------------------------------------------------------------
# The estimates
# ----------------------------------------------------------------------------------

def training_step_memory(config, batch_size, dtype=np.float32, n_threads=None):
    """MemoryEstimate of a training step at `batch_size` (the peak of the module docstring)."""
    itemsize = np.dtype(dtype).itemsize
    P = parameter_count(config) * itemsize
    L = max(int(np.prod(s, dtype=np.int64)) for s in _shapes(config)) * itemsize
    one = {k: batch_size * v for k, v in per_image(config, dtype).items()}
    B = workspace_bytes(config, dtype, n_threads)
    # The last step's cache, logits and their gradient live until this step's forward
    # pass returns; its dlogits (as large as the logits) until this step's loss is computed.
    activations = max(one["left"] + one["forward"], one["step"] + one["logits"])
    if activations + 5 * P >= one["cache"] + 7 * P + 3 * L:     # forward, loss and backward
        parts = {"activations": activations, "parameters, Adam, gradients": 5 * P}
    else:                                                       # the Adam update
        parts = {"activations": one["cache"], "parameters, Adam, gradients": 7 * P + 3 * L}
    return _with_slack(MemoryEstimate(f"a training step at batch {batch_size}", dict(parts, **{"column buffers": B})))


def _with_slack(estimate):
    estimate.parts["allocator slack"] = int(ALLOCATOR_SLACK * estimate.total)
    return estimate


def forward_memory(config, batch_size, dtype=np.float32, n_threads=None):
    """MemoryEstimate of a forward pass at `batch_size` in a loop (evaluation, naive
    sampling): the pass itself, and the previous pass's cache, still bound while it runs
    (`logits, _ = forward(...)`)."""
    one = per_image(config, dtype)
    return _with_slack(MemoryEstimate(f"a forward pass at batch {batch_size}", {
        "activations": batch_size * (one["forward"] + one["left"]),
        "parameters": parameter_count(config) * np.dtype(dtype).itemsize,
        "column buffers": workspace_bytes(config, dtype, n_threads),
    }))


def sampling_memory(config, n_samples, method="cached", dtype=np.float64):
    """MemoryEstimate of sampling.sample(params, config, n_samples, method=method) in
    `dtype` (float64, as there, by default)."""
    itemsize = np.dtype(dtype).itemsize
    images = n_samples * config.get("channels", 1) * config["height"] * config["width"] * (1 + itemsize)  # uint8, float x
    if method == "naive":
        est = forward_memory(config, n_samples, dtype)
        del est.parts["allocator slack"]
        est.what = f"sampling {n_samples} images (naive)"
        est.parts["parameters"] *= 2                       # our float64 copy, and the caller's
        est.parts["images"] = images
        return _with_slack(est)
    if method != "cached":
        raise ValueError(f"method must be 'cached' or 'naive', got {method!r}")
    state = per_image(config, dtype, probe=_sampler_probe)["state"]
    return _with_slack(MemoryEstimate(f"sampling {n_samples} images", {
        "cached maps": n_samples * state,
        "parameters (two copies)": 2 * parameter_count(config) * itemsize,
        "images": images,
    }))


# ----------------------------------------------------------------------------------
# What the machine has, and the refusal
# ----------------------------------------------------------------------------------

def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory():
    """Bytes this process can still allocate without swapping, or None if unknown.

    Linux: MemAvailable from /proc/meminfo (free memory plus what the kernel can reclaim
    from its caches), lowered to what a cgroup memory limit leaves in a container (v2:
    memory.max - memory.current; v1: limit_in_bytes - usage_in_bytes). Elsewhere: the
    free physical pages (os.sysconf), a lower bound. None when neither can be read.
    """
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:    # v1 writes ~2^63 for "none"
            left = max(0, limit - usage)
            available = left if available is None else min(available, left)
    return available


def check_fits(estimate_bytes, what, available=None, reduce="the batch size or the model's width"):
    """Raise MemoryBudgetError (one line) if `estimate_bytes` exceed the memory available.

    estimate_bytes: an int, or a MemoryEstimate (its total; its parts go in the message).
    what: what needs it, e.g. "a training step at batch 100000".
    available: bytes; None reads `available_memory()` (no refusal when that is unknown).
    reduce: what the user can lower, named in the message, e.g. "--batch-size".
    """
    detail = ""
    if isinstance(estimate_bytes, MemoryEstimate):
        detail = " (" + ", ".join(f"{k} {format_bytes(v)}" for k, v in estimate_bytes.parts.items() if v) + ")"
        estimate_bytes = estimate_bytes.total
    available = available_memory() if available is None else available
    if available is None or estimate_bytes <= available:
        return
    raise MemoryBudgetError(f"{what} needs about {format_bytes(estimate_bytes)}{detail}, but only "
                            f"{format_bytes(available)} of memory is available; reduce {reduce}")
