"""All the cores for the convolution engine: whole image chunks per thread.

A masked convolution (conv.py) is a loop over chunks of images: gather the kept taps of
a chunk (Numba), then one matrix product (BLAS). OpenBLAS could parallelise each product
by itself, but the gather between the products would stay serial, and its threads meet
at the end of every product, a few hundred microseconds of work each here: on a core
that anything else also uses, they wait for each other. So we give each thread whole
chunks instead: thread k gathers and multiplies its own share of the chunks with a
*one-thread* BLAS, writing its own rows of the output (no locks, no shared cells), and
the threads meet once per layer call.

The rule, one for every layer and every core count: conv.py cuts a layer's images into a
multiple of n_threads() chunks of near-equal size (`conv._image_chunks`), and
`run_in_threads` gives each thread an equal run of them. Measured (benchmarks/results/
step_times.md, 2026-12-02): against the rule before (only layers of >= 1024 gathered rows
shared this way, smaller ones left to OpenBLAS's threads), and at one thread the rule
changes nothing (the chunks run in the calling thread, as before). Earlier (2-core AMD
EPYC, forward pass of a 7x7 mask-B layer, 64 images, 64 channels): 96-100 ms with one
thread, 51-88 ms with two BLAS threads (it varied from run to run), 52-53 ms with two
chunk threads.

The gather kernel releases the GIL (`nogil=True`) and so does NumPy inside a BLAS call,
so Python threads run them truly in parallel. With NUMBA_DISABLE_JIT=1 the gather is
plain Python again and holds the GIL: still correct, only serial.

How many threads: PIXELCNN_NP_THREADS if set, else as many as OpenBLAS was allowed
(OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, or the cores it found), so a user who limits
BLAS limits us too. One thread runs everything in the calling thread, exactly as before.
"""

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

THREADS_ENV = "PIXELCNN_NP_THREADS"

_blas = None          # threadpoolctl's handle on the loaded BLAS libraries (found on first use)
_pool = None          # the worker threads, created on first use
_pool_size = 0
_lock = threading.Lock()


def _blas_controller():
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def n_threads():
    """Threads the convolution engine uses (see the module docstring)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        return n
    counts = [lib["num_threads"] for lib in _blas_controller().info()]
    return max(1, min(counts)) if counts else 1


def _get_pool(n):
    """The pool of n worker threads (a new one if the count changed)."""
    global _pool, _pool_size
    with _lock:
        if _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=n, thread_name_prefix="pixelcnn_np"), n
        return _pool


def split(items, parts):
    """items cut into at most `parts` consecutive, non-empty groups of near-equal size
    (any items: conv.py passes (n0, n1) image chunks)."""
    items = list(items)
    k = min(parts, len(items))
    bounds = [g * len(items) // k for g in range(k + 1)] if k else [0]
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def run_in_threads(work, items, threaded=True):
    """[work(group) for group in split(items, n_threads())], one group per thread.

    `work` gets a list of items and must write only memory that belongs to them (or
    return its result, e.g. a partial sum). BLAS runs one thread per call while the
    groups run, and gets its own count back after. The groups and their order depend only
    on the thread count, so results are deterministic for a given count. Each group runs in
    a copy of the caller's context variables, so np.errstate set by the caller holds there too.
    threaded=False runs one group here, with BLAS's own threads (for work too small to share).
    """
    in_worker = threading.current_thread().name.startswith("pixelcnn_np")
    n = 1 if (in_worker or not threaded) else n_threads()    # never nest the pool (it could deadlock)
    groups = split(items, n)
    if len(groups) <= 1:
        return [work(g) for g in groups]                     # one thread: here, as a plain loop
    contexts = [contextvars.copy_context() for _ in groups]  # the caller's np.errstate etc., one copy per thread
    with _blas_controller().limit(limits=1):
        return list(_get_pool(n).map(lambda context, group: context.run(work, group), contexts, groups))
