"""Sample digits from a trained PixelCNN checkpoint.

    python examples/sample.py --checkpoint runs/mnist/checkpoint.npz --n 64 --out samples.png
    python examples/sample.py --checkpoint C --complete-rows 14 --out completions.png
    python examples/sample.py --checkpoint C --method naive --n 4      # the slow reference
    python examples/sample.py --checkpoint C --n 100                   # conditional: a row per digit 0-9
    python examples/sample.py --checkpoint C --digits 3,7 --n 20       # conditional: only 3s and 7s

--method cached (default) computes each layer only at the pixel being sampled; naive
runs the whole network once per pixel. Both give the same images for the same --seed.
"""

import argparse
import sys
import time

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np import cli
from pixelcnn_np.data import DATA_DIR_ENV, binarize
from pixelcnn_np.memory import sampling_memory
from pixelcnn_np.models import describe
from pixelcnn_np.plots import completion_figure, samples_figure, save_figure
from pixelcnn_np.progress import Progress
from pixelcnn_np.sampling import sample


def digit_list(text):
    return cli.int_list(text, 0, "digits such as 3 or 0,1,2")


def build_parser():
    p = cli.OneLineParser(description="Sample MNIST digits from a pixelcnn_np checkpoint.",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help=cli.checkpoint_help())
    p.add_argument("--n", type=cli.positive_int, default=16, help="number of images")
    p.add_argument("--seed", type=cli.non_negative_int, default=0,
                   help="random seed (same seed, same images, either method)")
    p.add_argument("--method", choices=("cached", "naive"), default="cached")
    p.add_argument("--temperature", type=cli.positive_float, default=1.0, help="< 1 sharper, > 1 more random")
    p.add_argument("--out", default="samples.png", help="PNG grid to write")
    p.add_argument("--npy", default=None, help="also save the raw (n, 28, 28) uint8 array here")
    p.add_argument("--complete-rows", type=int, default=None,
                   help="complete real test digits: keep their top R rows, sample the rest")
    p.add_argument("--completions", type=cli.positive_int, default=3,
                   help="with --complete-rows: completions sampled per digit")
    p.add_argument("--digits", type=digit_list, default=None,
                   help="class-conditional checkpoints only: comma-separated digits to draw, one row per digit "
                        "(default: 0,1,...,9)")
    p.add_argument("--data-dir", default=None, help=f"MNIST folder for --complete-rows (default: ${DATA_DIR_ENV} or ./data)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing MNIST files")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    parser.check_output("--out", args.out)                 # before sampling, not after it
    parser.check_output("--npy", cli.npy_path(args.npy))
    ck = cli.open_checkpoint(parser, cli.checkpoint_path(args.checkpoint),
                             hint="" if args.checkpoint else " (pass --checkpoint PATH)")
    config, params = ck.config, ck.params
    if not args.checkpoint:
        nll = ck.meta.get("test_nats_per_pixel")
        print(f"no --checkpoint: using the pretrained {describe(config)}"
              + (f" (test NLL {nll:.4f} nats/pixel)" if nll is not None else ""))
    H, W = config["height"], config["width"]
    n_classes = config.get("n_classes", 0)
    if args.digits is not None and not n_classes:
        parser.error("--digits needs a class-conditional checkpoint (train one with train_mnist.py --conditional)")
    digits = args.digits if args.digits is not None else list(range(n_classes))
    if digits and max(digits) >= n_classes:
        parser.error(f"--digits must lie in 0..{n_classes - 1} for this checkpoint, got {max(digits)}")
    labels, ncols = None, None
    if n_classes:                                  # one row per digit: n // len(digits) images each
        per_row = -(-args.n // len(digits))
        labels, ncols = np.repeat(digits, per_row)[:args.n], per_row
    images, start, originals = None, 0, None
    if args.complete_rows is not None:
        if not 0 < args.complete_rows < H:
            parser.error(f"--complete-rows must lie in 1..{H - 1}, got {args.complete_rows}")
        dataset = ck.meta.get("run", {}).get("dataset", "mnist")          # the one it was trained on
        data = cli.load_data(args.data_dir, download=not args.no_download, splits=("test",), dataset=dataset)
        originals, true_labels = cli.split(data, "test", config, limit=args.n)
        if n_classes:                              # complete each digit given its true label
            labels = np.tile(true_labels, args.completions)
        if config["pixels"] == "binary":
            originals = binarize(originals)
        images = np.tile(originals, (args.completions,) + (1,) * (originals.ndim - 1))
        start = args.complete_rows * W
    count = len(images) if images is not None else args.n
    cli.check_memory(parser, sampling_memory(config, count, args.method), reduce="--n")
    bar = Progress(H * W - start, f"sampling {count} ({args.method})", enabled=not args.no_progress)
    t0 = time.perf_counter()
    out = sample(params, config, count, np.random.default_rng(args.seed), method=args.method,
                 temperature=args.temperature, images=images, start=start, progress=lambda d, t: bar.update(d),
                 labels=labels)
    bar.close()
    seconds = time.perf_counter() - t0
    vmax = 1 if config["pixels"] == "binary" else 255
    if originals is not None:
        fig = completion_figure(originals, args.complete_rows, out.reshape((args.completions,) + originals.shape),
                                vmax=vmax)
    else:
        what = f"rows: digits {','.join(map(str, digits))}, " if n_classes else ""
        fig = samples_figure(out, f"{args.n} samples ({what}{describe(config)}, T={args.temperature:g})",
                             vmax=vmax, ncols=ncols)
    save_figure(fig, args.out)
    if args.npy:
        cli.save_npy(args.npy, out)
    print(f"{count} images in {seconds:.2f} s ({args.method}); wrote {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
