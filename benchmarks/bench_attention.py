"""Time one causal self-attention block against one masked-conv layer of the same width.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_attention.py            # batch 64, h 32, d 8
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_attention.py --width 32,48,64 --reps 9
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

Why the ratio depends on the width: `multiply_adds` counts the products each layer does.
The attention block's (D, D) part costs 7d + 3 multiply-adds per computed score whatever
the width h (plus two exponentials), and only its 1x1 projections grow with h; a conv
layer's cost grows as h^2. --width takes a list (32,48,64) and prints one line per width.

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
    p.add_argument("--width", type=width_list, default=[32],
                   help="h, channels in and out of every timed layer; a comma-separated list times each {32}")
    p.add_argument("--key-channels", type=int, default=8, help="d, the attention block's key channels")
    p.add_argument("--size", type=int, default=28, help="images are size x size")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=7, help="timed steps per layer (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch timings")
    return p.parse_args()


def width_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def multiply_adds(N, h, d, S, K, tile):
    """Multiply-adds of one forward + backward step: (attention block, K x K mask-B conv).

    Attention, per computed score (the tiles cover a fraction of the (D, D) square, see
    attention.query_tiles): forward S = Q K^T (d) and [V; 1]^T E^T (d + 1); backward
    S - lse (d + 1), dV (d), dA - delta (d + 1), dQ (d), dK (d): 7d + 3 in all. Per
    position, the projections: [Wq; Wk; Wv] U and Wo O forward (4dh), dWo, dO, d[Wq; Wk; Wv]
    and dU backward (7dh). Conv: the kept taps of the mask (5 of a 3x3 mask B) times h^2
    per position, once each for y, dx and dw."""
    from pixelcnn_np.attention import query_tiles
    from pixelcnn_np.masks import causal_mask

    D = S * S
    scores = sum((r1 - r0) * r1 for r0, r1 in query_tiles(D, tile))      # computed, per image
    attention = N * (scores * (7 * d + 3) + D * 11 * d * h)
    conv = 3 * N * D * h * h * int(causal_mask(K, "B").sum())
    return attention, conv


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

def ours_cases(args, h, np, rng):
    """{name: step()} where step runs one forward + backward of that layer, width h."""
    from pixelcnn_np.attention import causal_attention_backward, causal_attention_forward
    from pixelcnn_np.conv import masked_conv2d_backward, masked_conv2d_forward
    from pixelcnn_np.masks import causal_mask

    N, d, S = args.batch_size, args.key_channels, args.size
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

def torch_cases(args, h, np, rng):
    import torch
    import torch.nn.functional as F
    from pixelcnn_np.masks import causal_mask

    torch.set_num_threads(args.threads)
    N, d, S = args.batch_size, args.key_channels, args.size
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


def time_width(args, h, np, use_torch):
    """{name: [seconds of each rep]} for the layers of width h, interleaved."""
    rng = np.random.default_rng(0)
    cases = ours_cases(args, h, np, rng)
    if use_torch:
        cases.update(torch_cases(args, h, np, rng))
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
    return times


def main():
    args = parse()
    set_threads(args.threads)
    import pixelcnn_np  # noqa: F401  (before numpy: OpenBLAS kernel choice, see blas_setup.py)
    import numpy as np
    from pixelcnn_np.attention import QUERY_TILE

    torch_version = None
    if not args.no_torch:
        try:
            import torch
            torch_version = torch.__version__
        except ImportError:
            print("PyTorch is not installed: timing ours only")
    print(f"batch {args.batch_size}, float32, key channels {args.key_channels}, "
          f"{args.size}x{args.size}, threads {args.threads} (OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}), {args.reps} reps after {args.warmup} warm-up"
          + (f", torch {torch_version}" if torch_version else ""))
    summary = []
    for h in args.width:
        times = time_width(args, h, np, torch_version is not None)
        med = {name: float(np.median(t)) for name, t in times.items()}
        print(f"width {h}: forward + backward, seconds:")
        for name, t in times.items():
            print(f"  {name:18s} median {med[name]:.4f}  (min {min(t):.4f}, max {max(t):.4f})")
        for prefix in ("", "torch ") if torch_version else ("",):
            a = med[prefix + "attention"]
            print(f"  {prefix or 'ours '}ratios: attention / conv 3x3 B = {a / med[prefix + 'conv 3x3 B']:.2f}, "
                  f"attention / conv 7x7 B = {a / med[prefix + 'conv 7x7 B']:.2f}")
        attn_macs, conv_macs = multiply_adds(args.batch_size, h, args.key_channels, args.size, 3, QUERY_TILE)
        summary.append((h, med["attention"], med["conv 3x3 B"], attn_macs, conv_macs))
    if len(summary) > 1:
        print("\nwidth  attention s  conv 3x3 B s  ratio  multiply-adds: attention / conv 3x3 B")
        for h, a, c, am, cm in summary:
            print(f"{h:5d}  {a:11.4f}  {c:12.4f}  {a / c:5.2f}  {am / 1e9:.2f} G / {cm / 1e9:.2f} G = {am / cm:.2f}")
    else:
        h, a, c, am, cm = summary[0]
        print(f"multiply-adds: attention {am / 1e9:.2f} G, conv 3x3 B {cm / 1e9:.2f} G ({am / cm:.2f}x)")


if __name__ == "__main__":
    main()
