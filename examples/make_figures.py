"""Regenerate the figures the README shows, from the pretrained checkpoint.

    python examples/make_figures.py --data-dir ../shared/mnist      # writes examples/figures/*
    python examples/make_figures.py --data-dir ../shared/mnist --only ink_probability masks

samples_default.png, sampling.gif, completions.png, receptive_field.png, masks.png,
per_pixel_nll.png, likelihood_extremes.png and ink_probability.png are made from
`pixelcnn_np/pretrained.npz` (or --checkpoint). loss_curve_<name>.png is the training curve
of a run, so it is redrawn only when --run points at that run's folder: its checkpoint's
history (every step's loss), else its metrics.json (one train and test point per epoch); a
run measured under the stochastic test protocol is drawn against the papers' figures
(metrics.PUBLISHED_BINARIZED_MNIST):

    python examples/make_figures.py --data-dir ../shared/mnist --only loss_curve \
        --run runs/dyn_dilated --run-name dynamic --curve-x epoch
--only redraws just the figures named (per_pixel_nll runs the model on all 10,000 test
digits, the slowest of them).
"""

import json
import sys
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np.checkpoint import CheckpointError, load_checkpoint
from pixelcnn_np.cli import PRETRAINED, OneLineParser
from pixelcnn_np.data import DATA_DIR_ENV, DataError, binarize, load_mnist
from pixelcnn_np.metrics import published_references
from pixelcnn_np.models import describe
from pixelcnn_np.plots import (
    completion_figure, ink_probability, ink_probability_figure, likelihood_extremes_figure, loss_curve_figure,
    masks_figure, per_pixel_nll_figure, receptive_field_figure, samples_figure, save_figure, save_sampling_animation,
)
from pixelcnn_np.receptive_field import blind_spot_demo
from pixelcnn_np.sampling import sample_cached
from pixelcnn_np.train import nll_per_pixel

HERE = Path(__file__).resolve().parent


FIGURES = ["samples", "completions", "receptive_field", "masks", "per_pixel_nll", "ink_probability",
           "loss_curve"]


def run_history(run_dir):
    """A run's training history: its checkpoint's (with every step's loss) if the checkpoint
    holds one, else its metrics.json (per-epoch rows only)."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoint.npz").exists():
        history = load_checkpoint(run_dir / "checkpoint.npz").meta.get("history")
        if history:
            return history
    return json.loads((run_dir / "metrics.json").read_text())


def run_protocol(run_dir):
    """The test protocol a run was measured under ("threshold" or "stochastic"), from its
    metrics.json; "threshold" for runs older than the stochastic protocol."""
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()).get("test_protocol", "threshold") if path.exists() else "threshold"


def main(argv=None):
    p = OneLineParser(description="Regenerate the README figures from the pretrained checkpoint.")
    p.add_argument("--checkpoint", default=str(PRETRAINED))
    p.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${DATA_DIR_ENV}, else ./data)")
    p.add_argument("--run", default=None, help="a training run's --out folder, to redraw its loss curve")
    p.add_argument("--run-name", default="default", help="the curve is written to loss_curve_<run-name>.png")
    p.add_argument("--curve-x", choices=("step", "epoch"), default="step",
                   help="the loss curve's x axis (default: step)")
    p.add_argument("--only", nargs="+", choices=FIGURES, default=FIGURES, help="redraw only these figures")
    p.add_argument("--out", default=str(HERE / "figures"))
    args = p.parse_args(argv)
    p.check_output("--out", args.out, folder=True)           # before any figure is drawn
    out = Path(args.out)
    want = set(args.only)
    try:
        ck = load_checkpoint(args.checkpoint)
        test = load_mnist(args.data_dir, splits=("test",))["test_images"]
        history = run_history(args.run) if args.run and "loss_curve" in want else None
    except (CheckpointError, DataError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    params, config = ck.params, ck.config
    params64 = {k: v.astype(np.float64) for k, v in params.items()}

    if "samples" in want:
        imgs = sample_cached(params, config, 64, np.random.default_rng(0))
        save_figure(samples_figure(imgs, f"64 samples ({describe(config)}, T=1)"), out / "samples_default.png")
        save_sampling_animation(imgs[:16], out / "sampling.gif", every=28)

    if "completions" in want:
        originals = binarize(test[:10])
        done = sample_cached(params, config, 30, np.random.default_rng(0), images=np.tile(originals, (3, 1, 1)),
                             start=14 * config["width"])
        save_figure(completion_figure(originals, 14, done.reshape(3, 10, 28, 28)), out / "completions.png")

    if "receptive_field" in want:
        i, j = 14, 14
        demo = blind_spot_demo(i, j, extra=(f"pretrained\n{describe(config)}", params64, config))
        save_figure(receptive_field_figure([f for _, f, _ in demo], [t for t, _, _ in demo],
                                           i, j, regions=[r for _, _, r in demo]), out / "receptive_field.png")

    if "masks" in want:
        save_figure(masks_figure(5), out / "masks.png")

    if "per_pixel_nll" in want:
        per_pixel = nll_per_pixel(params, config, test)                        # (N, H, W) nats
        nll = per_pixel.mean(axis=0)
        save_figure(per_pixel_nll_figure(nll, title=f"Pretrained {describe(config)}: mean NLL of each pixel "
                                                    f"position\nover the {len(test):,} test digits "
                                                    f"({nll.mean():.4f} nats/pixel)"),
                    out / "per_pixel_nll.png")
        save_figure(likelihood_extremes_figure(binarize(test), per_pixel.sum(axis=(1, 2))),
                    out / "likelihood_extremes.png")

    if "ink_probability" in want:
        digit = binarize(test[0])                                              # (H, W) 0/1, a 7
        save_figure(ink_probability_figure(digit, ink_probability(params64, config, digit),
                                           title=f"Pretrained {describe(config)}, first test digit: "
                                                 f"what it expects at each pixel, having seen only the pixels "
                                                 f"before it"),
                    out / "ink_probability.png")

    if history is not None:
        # a run measured under the papers' protocol is drawn against the papers' figures
        refs = published_references() if run_protocol(args.run) == "stochastic" else None
        save_figure(loss_curve_figure(history, x=args.curve_x, references=refs,
                                      title=f"Training curve of the {args.run_name} run: train and test NLL"),
                    out / f"loss_curve_{args.run_name}.png")
    print(f"wrote the figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
