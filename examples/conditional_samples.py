"""Draw each digit from a class-conditional checkpoint and check it is that digit.

    python examples/train_mnist.py --conditional --out runs/cond            # 15 minutes
    python examples/conditional_samples.py --checkpoint runs/cond/checkpoint.npz

Three judges the project builds itself (pixelcnn_np.classifier), all from the binarized
training digits: softmax regression fitted by L-BFGS (linear), 3 nearest neighbours in
pixel space, and a one-hidden-layer perceptron trained with Adam. Every image a judge sees
(training, test, sample) is first centred by its centre of mass, as MNIST's digits were
(`classifier.recenter`; --no-recenter judges the raw pixels). Each judge's own test accuracy
is printed first, since a sample can only be judged as well as the judge reads real digits.
Then --per-digit samples of each digit 0-9 are drawn with that label and classified.
Writes a figure with one row per digit (--figure) and, with --json, the numbers.
"""

import json
import sys
import time

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np import cli
from pixelcnn_np.classifier import fit_mlp, fit_softmax_regression, knn_predict, mlp_predict, predict, recenter
from pixelcnn_np.data import DATA_DIR_ENV, binarize
from pixelcnn_np.plots import samples_figure, save_figure
from pixelcnn_np.progress import Progress
from pixelcnn_np.sampling import sample_cached


def build_parser():
    p = cli.OneLineParser(description="Sample every digit from a class-conditional checkpoint and judge the samples "
                                      "with three classifiers fitted on MNIST.")
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz of a model trained with --conditional")
    p.add_argument("--per-digit", type=cli.positive_int, default=100, help="samples per digit (default 100)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0, help="sampling seed (default 0)")
    p.add_argument("--figure", default="conditional_samples.png",
                   help="PNG with one row per digit, the first 10 samples of each (default conditional_samples.png)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--npy", default=None, help="also save the samples (10 * per-digit, 28, 28) uint8 here")
    p.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${DATA_DIR_ENV}, else ./data)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing MNIST files")
    p.add_argument("--judge-limit", type=cli.positive_int, default=None,
                   help="fit the judges on the first N training digits and test them on the first N test digits "
                        "(default: all; a quick check)")
    p.add_argument("--no-recenter", action="store_true",
                   help="judge the raw pixels, without centring each image by its centre of mass")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    parser.check_output("--figure", args.figure)            # before the judges and the samples
    parser.check_output("--json", args.json)
    parser.check_output("--npy", cli.npy_path(args.npy))
    ck = cli.open_checkpoint(parser, args.checkpoint)
    k = ck.config.get("n_classes", 0)
    if k != 10 or ck.config["pixels"] != "binary":
        parser.error(f"{args.checkpoint} is not a class-conditional binary MNIST model "
                     f"(n_classes={k}, pixels={ck.config['pixels']}); train one with train_mnist.py --conditional")
    data = cli.load_data(args.data_dir, download=not args.no_download)

    # The judges, from binarized training digits; their test accuracy first.
    t0 = time.perf_counter()
    place = (lambda images: images) if args.no_recenter else recenter

    def flat(binary_images):
        """(N, H, W) 0/1 -> the (N, H * W) rows every judge reads."""
        return place(binary_images).reshape(len(binary_images), -1).astype(np.float64)

    n = args.judge_limit
    X_train, y_train = flat(binarize(data["train_images"][:n])), data["train_labels"][:n]
    W, b = fit_softmax_regression(X_train, y_train)
    mlp = fit_mlp(X_train, y_train)
    judges = {"softmax regression": lambda X: predict(W, b, X),
              "3-NN": lambda X: knn_predict(X_train, y_train, X, k=3),
              "MLP": lambda X: mlp_predict(mlp, X)}
    X_test, y_test = flat(binarize(data["test_images"][:n])), data["test_labels"][:n]
    judge_acc = {name: float((judge(X_test) == y_test).mean()) for name, judge in judges.items()}
    for name, acc in judge_acc.items():
        print(f"judge {name}: test accuracy {acc:.2%} on {len(y_test):,} binarized MNIST test digits")
    print(f"({time.perf_counter() - t0:.0f} s to build and test the judges)")

    labels = np.repeat(np.arange(10), args.per_digit)                       # 0,0,...,1,1,...
    bar = Progress(ck.config["height"] * ck.config["width"], f"sampling {len(labels)}",
                   enabled=not args.no_progress)
    t0 = time.perf_counter()
    images = sample_cached(ck.params, ck.config, len(labels), np.random.default_rng(args.seed), labels=labels,
                           progress=lambda d, t: bar.update(d))
    bar.close()
    seconds = time.perf_counter() - t0
    print(f"{len(labels)} samples in {seconds:.0f} s")
    if args.npy:
        cli.save_npy(args.npy, images)
    results = {}
    for name, judge in judges.items():
        judged = judge(flat(images))
        per_digit = [float((judged[labels == d] == d).mean()) for d in range(10)]
        results[name] = {"judge_test_accuracy": judge_acc[name], "accuracy": float((judged == labels).mean()),
                         "per_digit": per_digit}
        print(f"judged the requested digit by {name}: {results[name]['accuracy']:.1%}; per digit: "
              + "  ".join(f"{d}: {a:.0%}" for d, a in enumerate(per_digit)))

    shown = images.reshape(10, args.per_digit, *images.shape[1:])[:, :10].reshape(-1, *images.shape[1:])
    ncols = min(10, args.per_digit)
    verdicts = ", ".join(f"{name} {r['accuracy']:.1%}" for name, r in results.items())  # never rounded up to a target
    fig = samples_figure(shown, f"Row d: samples drawn given label d; judged to be d by\n{verdicts}", ncols=ncols)
    save_figure(fig, args.figure)
    print(f"wrote {args.figure}")
    if args.json:
        doc = {"judges": results, "samples": len(labels), "seconds_sampling": seconds, "seed": args.seed,
               "recentered": not args.no_recenter}
        cli.atomic_write(args.json, lambda f: json.dump(doc, f, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
