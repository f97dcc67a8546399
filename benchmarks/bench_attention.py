"""Time one causal self-attention block against one masked-conv layer of the same width.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_attention.py            # batch 64, h 32, d 8
    python benchmarks/bench_attention.py --width 64 --key-channels 16 --reps 9
    python benchmarks/bench_attention.py --threads 2 --no-torch

Issue 7 asks: "an attention block's step time <= 2x a masked-conv layer of the same
width (report both)". A step is forward + backward (every gradient, dx included), on
one batch of post-ReLU features x (N, h, 28, 28) in float32. Three layers are timed:

  (a) attention: attention.causal_attention_forward / _backward, h -> h, d key channels
  (b) conv 3x3 B: conv.masked_conv2d_forward / _backward, h -> h (the attention model's layers)
  (c) conv 7x7 B: the same with a 7x7 kernel (the seed PixelCNN's layers)

All three run interleaved in one process, in a rotating order, after warm-up steps
(Numba compilation, allocator), so they see the same machine load; medians over --reps
are printed with the ratios attention / conv. With PyTorch installed the same three
layers are timed in PyTorch too (nn.functional.conv2d with a masked weight; causal
scaled_dot_product_attention), interleaved with ours; --no-torch skips them.

Threads: --threads sets OPENBLAS/OMP/MKL/NUMBA thread counts *before* numpy is imported
(an OPENBLAS_NUM_THREADS already in the environment wins) and torch.set_num_threads.
"""

import argparse
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="h, channels in and out of every timed layer")
    p.add_argument("--key-channels", type=int, default=8, help="d, the attention block's key channels")
    p.add_argument("--size", type=int, default=28, help="images are size x size")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=7, help="timed steps per layer (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch timings")
    return p.parse_args()


def set_threads(n):
    """Thread counts for every pool, before numpy (and so OpenBLAS) is loaded."""
    if "numpy" in sys.modules:
        print("warning: numpy already imported, --threads may not reach OpenBLAS")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    os.environ.setdefault("NUMBA_NUM_THREADS", str(n))


# ----------------------------------------------------------------------------------
# ours
# ----------------------------------------------------------------------------------

def ours_cases(args, np, rng):
    """{name: step()} where step runs one forward + backward of that layer."""
    from pixelcnn_np.attention import causal_attention_backward, causal_attention_forward
    from pixelcnn_np.conv import masked_conv2d_backward, masked_conv2d_forward
    from pixelcnn_np.masks import causal_mask

    N, h, d, S = args.batch_size, args.width, args.key_channels, args.size
    f32 = np.float32
    x = np.maximum(rng.standard_normal((N, h, S, S)), 0).astype(f32)       # post-ReLU features
    dy = rng.standard_normal((N, h, S, S)).astype(f32)
    ap = {"pos": rng.standard_normal((h, S, S)), "q.w": rng.standard_normal((d, h)) / h ** 0.5,
          "q.b": np.zeros(d), "k.w": rng.standard_normal((d, h)) / h ** 0.5,
          "v.w": rng.standard_normal((d, h)) / h ** 0.5, "v.b": np.zeros(d),
          "o.w": rng.standard_normal((h, d)) / d ** 0.5, "o.b": np.zeros(h)}
    ap = {k: v.astype(f32) for k, v in ap.items()}

    def attention_step():
        y, cache = causal_attention_forward(x, ap)
        return causal_attention_backward(dy, cache)

    def conv_step(K):
        w = (rng.standard_normal((h, h, K, K)) * causal_mask(K, "B") / (h * K) ** 0.5).astype(f32)
        b = np.zeros(h, f32)

        def step():
            y, cache = masked_conv2d_forward(x, w, b, "B")
            return masked_conv2d_backward(dy, cache, need_dx=True)
        return step

    return {"attention": attention_step, "conv 3x3 B": conv_step(3), "conv 7x7 B": conv_step(7)}


# ----------------------------------------------------------------------------------
# PyTorch (optional)
# ----------------------------------------------------------------------------------

def torch_cases(args, np, rng):
    import torch
    import torch.nn.functional as F
    from pixelcnn_np.masks import causal_mask

    torch.set_num_threads(args.threads)
    N, h, d, S = args.batch_size, args.width, args.key_channels, args.size
    x = torch.relu(torch.randn(N, h, S, S)).requires_grad_()
    dy = torch.randn(N, h, S, S)
    pos = torch.randn(h, S, S, requires_grad=True)
    q, k, v, o = (torch.nn.Linear(h, d), torch.nn.Linear(h, d, bias=False), torch.nn.Linear(h, d),
                  torch.nn.Linear(d, h))

    def attention_step():
        u = (x + pos).flatten(2).transpose(1, 2)                            # (N, S*S, h)
        a = F.scaled_dot_product_attention(q(u), k(u), v(u), is_causal=True)
        y = o(a).transpose(1, 2).reshape(N, h, S, S)
        y.backward(dy)

    def conv_step(K):
        mask = torch.tensor(causal_mask(K, "B"), dtype=torch.float32)
        w = (torch.randn(h, h, K, K) / (h * K) ** 0.5).requires_grad_()
        b = torch.zeros(h, requires_grad=True)

        def step():
            y = F.conv2d(x, w * mask, b, padding=K // 2)
            y.backward(dy)
        return step

    return {"torch attention": attention_step, "torch conv 3x3 B": conv_step(3),
            "torch conv 7x7 B": conv_step(7)}


def main():
    args = parse()
    set_threads(args.threads)
    import pixelcnn_np  # noqa: F401  (before numpy: OpenBLAS kernel choice, see blas_setup.py)
    import numpy as np

    rng = np.random.default_rng(0)
    cases = ours_cases(args, np, rng)
    torch_version = None
    if not args.no_torch:
        try:
            import torch
            torch_version = torch.__version__
            cases.update(torch_cases(args, np, rng))
        except ImportError:
            print("PyTorch is not installed: timing ours only")
    names = list(cases)
    for _ in range(args.warmup):
        for name in names:
            cases[name]()
    times = {name: [] for name in names}
    for r in range(args.reps):                       # interleaved, rotating which goes first
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(t)) for name, t in times.items()}

    print(f"batch {args.batch_size}, float32, width {args.width}, key channels {args.key_channels}, "
          f"{args.size}x{args.size}, threads {args.threads} (OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}), {args.reps} reps after {args.warmup} warm-up"
          + (f", torch {torch_version}" if torch_version else ""))
    print("forward + backward, seconds:")
    for name in names:
        print(f"  {name:18s} median {med[name]:.4f}  (min {min(times[name]):.4f}, max {max(times[name]):.4f})")
    for prefix in ("", "torch ") if torch_version else ("",):
        a = med[prefix + "attention"]
        print(f"{prefix or 'ours '}ratios: attention / conv 3x3 B = {a / med[prefix + 'conv 3x3 B']:.2f}, "
              f"attention / conv 7x7 B = {a / med[prefix + 'conv 7x7 B']:.2f}")


if __name__ == "__main__":
    main()
