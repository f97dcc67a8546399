"""Seconds to sample 64 MNIST digits: cached vs naive (ours) vs PyTorch's naive loop.

    python benchmarks/bench_sampling.py                       # seed net, random weights
    python benchmarks/bench_sampling.py --checkpoint C.npz    # a trained model
    python benchmarks/bench_sampling.py --full                # run every naive pixel step

The naive loop runs the *whole network* once per pixel, whatever the pixel, so every
one of its H*W steps costs the same. By default the naive samplers (ours and
PyTorch's) are timed over the first --naive-pixels pixels and the total is that time
x (H*W / pixels); --full times all of them. The cached sampler always runs in full.
Ours (cached and naive) run in --dtype (float64 by default: the dtype in which cached and
naive are identical); PyTorch runs in --torch-dtype (float32 by default, its usual dtype
and its fast path: its float64 convolutions are several times slower). Same threads, one
run, medians over --reps.
"""

import argparse
import time

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np.checkpoint import load_checkpoint
from pixelcnn_np.models import get_model, make_config
from pixelcnn_np.sampling import draw_pixel, sample_cached, sample_naive


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="sample this model (default: the seed net, random init)")
    p.add_argument("--model", choices=("seed", "gated"), default="seed", help="random-init model when no checkpoint")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--naive-pixels", type=int, default=28, help="pixels timed for the naive loops (then scaled)")
    p.add_argument("--full", action="store_true", help="time every pixel of the naive loops")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--torch-dtype", choices=("float64", "float32"), default="float32")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def torch_naive(params, config, n, pixels, dtype):
    """PyTorch running the naive loop on the same net: one full forward per pixel."""
    import torch

    from pixelcnn_np.torch_bridge import to_torch
    module = to_torch({k: v.astype(dtype) for k, v in params.items()}, config).eval()
    H, W = config["height"], config["width"]
    x = torch.zeros((n, 1, H, W), dtype=torch.float64 if dtype == np.float64 else torch.float32)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in range(pixels):
            i, j = divmod(p, W)
            logits = module(x)[:, :, i, j].numpy()
            x[:, 0, i, j] = torch.from_numpy(draw_pixel(logits, rng.random(n), config["pixels"], 1.0).astype(np.float64))
    return x


def main():
    args = parse()
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch is not installed: skipping its naive loop (pip install torch==2.13.0)")
    dtype = np.float64 if args.dtype == "float64" else np.float32
    if args.checkpoint:
        ck = load_checkpoint(args.checkpoint)
        params, config = ck.params, ck.config
    else:
        config = make_config("pixelcnn" if args.model == "seed" else "gated")
        params = get_model(config).init_params(config, np.random.default_rng(0))
    D = config["height"] * config["width"]
    pixels = D if args.full else min(D, args.naive_pixels)
    scale = D / pixels

    sample_cached(params, config, 2, np.random.default_rng(0), dtype=dtype)          # compile / warm up
    t_cached, t_naive, t_torch = [], [], []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        sample_cached(params, config, args.n, np.random.default_rng(rep), dtype=dtype)
        t_cached.append(time.perf_counter() - t0)
        # the naive loop over the first `pixels` pixels: start = D - pixels samples exactly that many
        t0 = time.perf_counter()
        sample_naive(params, config, args.n, np.random.default_rng(rep), dtype=dtype,
                     images=np.zeros((args.n, config["height"], config["width"]), np.uint8), start=D - pixels)
        t_naive.append((time.perf_counter() - t0) * scale)
        if torch:
            t0 = time.perf_counter()
            torch_naive(params, config, args.n, pixels, np.float64 if args.torch_dtype == "float64" else np.float32)
            t_torch.append((time.perf_counter() - t0) * scale)

    c, nv = np.median(t_cached), np.median(t_naive)
    how = "all pixels" if args.full else f"{pixels} of {D} pixels timed, x{scale:g}"
    print(f"{config['model']} ({args.checkpoint or 'random init'}), {args.n} digits, {args.dtype}, "
          f"{args.threads} threads, {args.reps} reps (medians)")
    print(f"  cached          {c:9.2f} s")
    print(f"  naive (ours)    {nv:9.2f} s   ({how})   naive/cached = {nv / c:.1f}x")
    if torch:
        tt = np.median(t_torch)
        print(f"  naive (PyTorch, {args.torch_dtype}) {tt:9.2f} s   ({how})   PyTorch-naive/cached = {tt / c:.1f}x")


if __name__ == "__main__":
    main()
