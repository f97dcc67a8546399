"""Time one full training step (forward, backward, Adam) against PyTorch CPU.

    python benchmarks/bench_train.py                    # seed net, batch 64, float32
    python benchmarks/bench_train.py --model default    # the default model of train_mnist.py (dilated)
    python benchmarks/bench_train.py --model gated      # the Gated PixelCNN (the default before 2026-11-25)
    python benchmarks/bench_train.py --reps 10 --threads 2
    python benchmarks/bench_train.py --model default --threads 1 --no-rss   # one core, no RSS subprocesses

Both sides run the same network on the same batch with the same number of threads,
interleaved step by step in one process (these machines are shared and noisy, so
only ratios from the same run mean anything). The PyTorch network is
`pixelcnn_np.torch_bridge.to_torch` of the same parameters: ordinary nn.Conv2d layers
whose weights are multiplied by the mask. Prints medians, the ratio ours/PyTorch, a
breakdown of where our step spends its time (per layer for the seed net; per function
from a profiled step for both), and the peak RSS of each side measured in a fresh
subprocess that runs only that side (a few training steps).

With --threads N > 1 it also times our step on one thread (engine and BLAS), interleaved
with the others, and prints the scaling N threads / 1 thread.

How far from the machine's limit: one instrumented step records every GEMM the engine
runs (each `conv._correlate` and `conv._weight_grad` call: forward, dx and dW of every
layer), counts its kept-tap multiply-adds (N*H*W * O * C*T, T kept taps; 2 FLOP each),
then times this box's own sgemm (np.matmul, float32) on that work in the same run, two
ways: each product as one whole-batch GEMM (BLAS's N threads), and as the engine's own
per-image GEMMs (one-thread BLAS, divided by N: the engine runs N images at a time).
`kept-tap GFLOP / our step time` is the engine's effective rate; `sgemm time / our step
time` is the fraction of the matrix-multiply limit it reaches (everything else in the
step, the gathers, ReLU, loss and Adam, counts against it).
PyTorch is optional: without it, only our timings are printed.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("seed", "default", "gated"), default="seed",
                   help="seed: 7x7 PixelCNN, 64 ch; default: the default preset's model of train_mnist.py; "
                        "gated: the Gated PixelCNN, 32 ch, dilations 1,2,1,4,1,2,1")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=7, help="timed steps per side (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rss-child", choices=("ours", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="glibc malloc keeps freed memory for reuse (blas_setup.keep_freed_memory), in this "
                        "process and so for both sides, and in the peak-RSS subprocesses")
    p.add_argument("--no-scaling", action="store_true",
                   help="skip timing ours on one thread too (done when --threads > 1, interleaved)")
    return p.parse_args()


def bench_config(name):
    from pixelcnn_np.models import make_config
    if name == "seed":
        return make_config("pixelcnn")
    if name == "gated":
        return make_config("gated")
    from pixelcnn_np.presets import PRESETS
    preset = PRESETS["default"]
    return make_config(preset["model"], **preset["arch"])


def batch(n, seed=0):
    """A batch of binary 28x28 images: real MNIST digits are not needed for timing,
    but the pixels are made sparse like MNIST (about 13% ink)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28)) < 0.13).astype(np.uint8)


# ----------------------------------------------------------------------------------
# ours
# ----------------------------------------------------------------------------------

def ours_setup(config, images):
    from pixelcnn_np.adam import adam_init
    from pixelcnn_np.models import get_model
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(0))
    return {"model": model, "params": params, "opt": adam_init(params), "images": images, "config": config}


def ours_step(s):
    from pixelcnn_np.adam import adam_step
    from pixelcnn_np.models import loss_and_grad, model_input
    x = model_input(s["images"], s["config"])
    logits, cache = s["model"].forward(s["params"], x, s["config"])
    loss, dlogits = loss_and_grad(logits, s["images"], s["config"])
    grads = s["model"].backward(dlogits, cache)
    s["params"], s["opt"] = adam_step(s["params"], grads, s["opt"], 1e-3)
    return loss


def ours_layer_breakdown(config, images, reps=3):
    """Median forward/backward seconds of each layer of a plain or dilated stack (ours)."""
    from pixelcnn_np.activations import relu_forward
    from pixelcnn_np.conv import conv2d_backward, conv2d_forward, masked_conv2d_backward, masked_conv2d_forward
    from pixelcnn_np.models import get_model, model_input
    from pixelcnn_np.pixelcnn import layers
    params = get_model(config).init_params(config, np.random.default_rng(0))
    dilation = {f"conv{l}": d for l, (_, _, d) in enumerate(layers(config))}
    h = model_input(images, config)
    rows = []
    names = list(dilation) + ["out"]
    for name in names:
        w, b = params[f"{name}.w"], params[f"{name}.b"]
        if name == "out":
            fwd = lambda: conv2d_forward(h, w, b)
            bwd = lambda y, c: conv2d_backward(np.ones_like(y), c)
        else:
            mt = "A" if name == "conv0" else "B"
            fwd = lambda: masked_conv2d_forward(h, w, b, mt, dilation[name])
            bwd = lambda y, c: masked_conv2d_backward(np.ones_like(y), c, need_dx=(name != "conv0"))
        tf, tb = [], []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            y, c = fwd()
            t1 = time.perf_counter()
            bwd(y, c)
            t2 = time.perf_counter()
            tf.append(t1 - t0)
            tb.append(t2 - t1)
        rows.append((name, float(np.median(tf[1:])), float(np.median(tb[1:]))))
        if name != "out":
            h, _ = relu_forward(y)
    return rows


# ----------------------------------------------------------------------------------
# PyTorch: the same network, masks applied by multiplying the weights (the usual way)
# ----------------------------------------------------------------------------------

def torch_setup(config, images):
    import torch
    import torch.nn.functional as F

    from pixelcnn_np.models import get_model
    from pixelcnn_np.torch_bridge import to_torch
    net = to_torch(get_model(config).init_params(config, np.random.default_rng(0)), config)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.tensor(images[:, None], dtype=torch.float32)
    return {"net": net, "opt": opt, "x": x, "F": F}


def profile_breakdown(s, top=10):
    """Own time of the most expensive functions in one profiled training step, run on one
    thread (the engine's and BLAS's: cProfile sees only the calling thread; with worker
    threads it would report their work as time spent waiting on a lock)."""
    import cProfile
    import pstats
    prof = cProfile.Profile()

    def profiled_step():
        prof.enable()
        ours_step(s)
        prof.disable()
    one_thread(profiled_step)
    stats = pstats.Stats(prof).stats
    rows = [(f"{func} ({os.path.basename(file)})", tt) for (file, line, func), (cc, nc, tt, ct, callers) in stats.items()]
    return sorted(rows, key=lambda r: -r[1])[:top]


def one_thread(f):
    """Seconds of f() with the engine and BLAS held to one thread (then put back)."""
    from threadpoolctl import threadpool_limits
    from pixelcnn_np.threads import THREADS_ENV
    before = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = "1"
    try:
        with threadpool_limits(1, user_api="blas"):
            t0 = time.perf_counter()
            f()
            return time.perf_counter() - t0
    finally:
        if before is None:
            del os.environ[THREADS_ENV]
        else:
            os.environ[THREADS_ENV] = before


def torch_step(s):
    s["opt"].zero_grad()
    logits = s["net"](s["x"])
    loss = s["F"].binary_cross_entropy_with_logits(logits, s["x"])
    loss.backward()
    s["opt"].step()
    return loss.item()


def step_gemms(s):
    """[(kind, M, K, N, chunks)] of every GEMM of one training step of ours (M x K times
    K x N over the whole batch, which the engine runs as `chunks`, a list of (M, K, N), one
    GEMM per image (dW transposed: (C*T, HW) @ (HW, O)), recorded by wrapping the engine's
    two GEMM drivers for one step. (1x1 layers run as one batched matmul; counted per image.)"""
    from pixelcnn_np import conv
    shapes = []
    correlate, weight_grad = conv._correlate, conv._weight_grad

    def rec_correlate(x, wk, taps, dilation, KH, KW, *a):
        N, C, H, W = x.shape
        O, CT = wk.shape
        if len(taps):
            chunks = [(O, CT, H * W)] * N                         # one GEMM per image
            shapes.append(("y = Wk cols", O, CT, N * H * W, chunks))
        return correlate(x, wk, taps, dilation, KH, KW, *a)

    def rec_weight_grad(x, dy, taps, dilation, KH, KW, *a):
        N, C, H, W = x.shape
        O, CT = dy.shape[1], C * len(taps)
        if len(taps):                                            # the engine computes dWk^T = cols dy^T
            chunks = [(CT, H * W, O)] * N
            shapes.append(("dWk = dy cols^T", O, N * H * W, CT, chunks))
        return weight_grad(x, dy, taps, dilation, KH, KW, *a)
    conv._correlate, conv._weight_grad = rec_correlate, rec_weight_grad
    try:
        ours_step(s)
    finally:
        conv._correlate, conv._weight_grad = correlate, weight_grad
    return shapes


def sgemm_seconds(M, K, N, reps=3):
    """Median seconds of this box's float32 np.matmul (M, K) @ (K, N), operands warm
    (written just before; in cache when they fit), into a preallocated output."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c = np.empty((M, N), dtype=np.float32)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def limit_report(s, t_step, n_threads):
    """Lines: the step's kept-tap GFLOP, our effective GFLOP/s, and this box's sgemm
    GFLOP/s on the same work, two ways: as one whole-batch GEMM per product (the shapes
    issue 20 named), and as the engine's own per-image GEMMs (each distinct shape timed
    once, counted as often as the step runs it). The per-image figure is the tighter limit:
    those GEMMs' operands fit in cache, and BLAS runs them faster than the whole-batch ones.
    The engine runs its images n_threads at a time, each thread on a one-thread BLAS, so
    that limit is their one-thread time divided by n_threads (perfect scaling); the
    whole-batch GEMMs are timed with BLAS's n_threads threads."""
    from threadpoolctl import threadpool_limits
    shapes = step_gemms(s)
    counts, chunk_counts = {}, {}
    for kind, M, K, N, chunks in shapes:
        counts[(kind, M, K, N)] = counts.get((kind, M, K, N), 0) + 1
        for shape in chunks:
            chunk_counts[shape] = chunk_counts.get(shape, 0) + 1
    flop = sum(2 * M * K * N * c for (_, M, K, N), c in counts.items())
    t_gemm = sum(sgemm_seconds(M, K, N) * c for (_, M, K, N), c in counts.items())
    with threadpool_limits(1, user_api="blas"):
        t_chunks = sum(sgemm_seconds(*shape, reps=9) * c for shape, c in chunk_counts.items()) / n_threads
    lines = [f"kept-tap work: {flop / 1e9:.1f} GFLOP per step in {len(shapes)} GEMMs "
             f"({sum(chunk_counts.values())} per-image GEMMs)"]
    for (kind, M, K, N), c in sorted(counts.items(), key=lambda kv: -kv[0][1] * kv[0][2] * kv[0][3] * kv[1]):
        lines.append(f"    {c:2d} x {kind:16s} {M:5d} x {K:6d} x {N:6d}")
    lines.append(f"  this box's sgemm, whole-batch shapes: {t_gemm:.3f} s, {flop / 1e9 / t_gemm:.1f} GFLOP/s")
    lines.append(f"  this box's sgemm, the engine's per-image GEMM shapes (1-thread time / {n_threads}): {t_chunks:.3f} s, "
                 f"{flop / 1e9 / t_chunks:.1f} GFLOP/s")
    lines.append(f"  ours: {flop / 1e9 / t_step:.1f} GFLOP/s effective = {t_gemm / t_step:.0%} of the whole-batch "
                 f"sgemm limit, {t_chunks / t_step:.0%} of the per-image one")
    return lines


# ----------------------------------------------------------------------------------

def peak_rss_mb():
    """Peak resident memory of this process (VmHWM; ru_maxrss would carry over the
    parent's peak across fork + exec on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(side, args):
    """Run a few steps of one side only and print its peak RSS in MB."""
    config = bench_config(args.model)
    images = batch(args.batch_size)
    if side == "ours":
        s = ours_setup(config, images)
        for _ in range(3):
            ours_step(s)
    else:
        import torch
        torch.set_num_threads(args.threads)
        s = torch_setup(config, images)
        for _ in range(3):
            torch_step(s)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def measure_rss(side, args):
    out = subprocess.run([sys.executable, __file__, "--rss-child", side, "--batch-size", str(args.batch_size),
                          "--threads", str(args.threads), "--model", args.model]
                         + (["--keep-freed-memory"] if args.keep_freed_memory else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main():
    args = parse()
    if args.keep_freed_memory:
        from pixelcnn_np.blas_setup import keep_freed_memory
        keep_freed_memory()
    # Our engine's threads (threads.py) follow BLAS's thread count: give BLAS --threads.
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.threads, user_api="blas")
    if args.rss_child:
        return rss_child(args.rss_child, args)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing ours only (pip install torch==2.13.0 for the comparison)")
    import numba
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    config = bench_config(args.model)
    images = batch(args.batch_size)
    ours = ours_setup(config, images)
    theirs = torch_setup(config, images) if torch else None
    for _ in range(2):                                 # warm-up: Numba compilation, allocator
        ours_step(ours)
        if theirs:
            torch_step(theirs)
    t_ours, t_torch, t_one = [], [], []
    scaling = args.threads > 1 and not args.no_scaling
    for _ in range(args.reps):                         # interleaved, so both see the same noise
        t0 = time.perf_counter()
        ours_step(ours)
        t_ours.append(time.perf_counter() - t0)
        if theirs:
            t0 = time.perf_counter()
            torch_step(theirs)
            t_torch.append(time.perf_counter() - t0)
        if scaling:                                    # ours again on one thread, for the scaling figure
            t_one.append(one_thread(lambda: ours_step(ours)))

    print(f"{args.model} net, batch {args.batch_size}, float32, {args.threads} threads, {args.reps} reps; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}"
          f"{'; malloc keeps freed memory' if args.keep_freed_memory else ''}")
    print(f"  ours    median {np.median(t_ours):.3f} s/step  (min {min(t_ours):.3f})")
    if t_one:
        print(f"  ours on 1 thread, same run: median {np.median(t_one):.3f} s/step; "
              f"{args.threads} threads / 1 thread = {np.median(t_ours) / np.median(t_one):.2f}")
    if theirs:
        print(f"  PyTorch median {np.median(t_torch):.3f} s/step  (min {min(t_torch):.3f}), torch {torch.__version__}")
        print(f"  ratio ours/PyTorch = {np.median(t_ours) / np.median(t_torch):.3f}")
    for line in limit_report(ours, float(np.median(t_ours)), args.threads):
        print(line)
    if config["model"] in ("pixelcnn", "dilated"):
        print("per-layer breakdown (ours, median seconds):")
        print(f"  {'layer':8s} {'forward':>8s} {'backward':>9s}")
        for name, f, b in ours_layer_breakdown(config, images):
            print(f"  {name:8s} {f:8.4f} {b:9.4f}")
    print("where one step of ours spends its time (cProfile of a step on one thread, own time per function, seconds):")
    for name, seconds in profile_breakdown(ours):
        print(f"  {seconds:7.3f}  {name}")
    if not args.no_rss:
        r_ours = measure_rss("ours", args)
        line = f"peak RSS: ours {r_ours:.0f} MB"
        if theirs:
            r_torch = measure_rss("torch", args)
            line += f", PyTorch {r_torch:.0f} MB, ratio {r_ours / r_torch:.2f}"
        print(line)


if __name__ == "__main__":
    main()
