"""Regenerate the figures the README shows, from the pretrained checkpoint.

    python examples/make_figures.py --data-dir ../shared/mnist      # writes examples/figures/*.png

samples_default.png, completions.png, receptive_field.png, masks.png,
per_pixel_nll.png, likelihood_extremes.png and sampling.gif are made from `pixelcnn_np/pretrained.npz` (or --checkpoint);
loss_curve_default.png is the training curve of a run, so it is redrawn only when
--run points at that run's folder (its checkpoint holds the history).
"""

import sys
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np.checkpoint import CheckpointError, load_checkpoint
from pixelcnn_np.cli import OneLineParser
from pixelcnn_np.data import DATA_DIR_ENV, DataError, binarize, load_mnist
from pixelcnn_np.models import get_model, make_config
from pixelcnn_np.plots import (
    completion_figure, likelihood_extremes_figure, loss_curve_figure, masks_figure, per_pixel_nll_figure,
    receptive_field_figure, samples_figure, save_figure, save_sampling_animation,
)
from pixelcnn_np.receptive_field import receptive_field, theoretical_region
from pixelcnn_np.sampling import sample_cached
from pixelcnn_np.train import nll_per_pixel

HERE = Path(__file__).resolve().parent
PRETRAINED = Path(pixelcnn_np.__file__).resolve().parent / "pretrained.npz"


def main(argv=None):
    p = OneLineParser(description="Regenerate the README figures from the pretrained checkpoint.")
    p.add_argument("--checkpoint", default=str(PRETRAINED))
    p.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${DATA_DIR_ENV}, else ./data)")
    p.add_argument("--run", default=None, help="a training run's --out folder, to redraw its loss curve")
    p.add_argument("--out", default=str(HERE / "figures"))
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        ck = load_checkpoint(args.checkpoint)
        test = load_mnist(args.data_dir)["test_images"]
    except (CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    params, config = ck.params, ck.config

    imgs = sample_cached(params, config, 64, np.random.default_rng(0))
    save_figure(samples_figure(imgs, f"64 samples ({config['model']}, T=1)"), out / "samples_default.png")
    save_sampling_animation(imgs[:16], out / "sampling.gif", every=28)

    originals = binarize(test[:10])
    done = sample_cached(params, config, 30, np.random.default_rng(0), images=np.tile(originals, (3, 1, 1)),
                         start=14 * config["width"])
    save_figure(completion_figure(originals, 14, done.reshape(3, 10, 28, 28)), out / "completions.png")

    plain = make_config("pixelcnn", n_layers=2, kernel_size=3, hidden=16)   # small plain net: the wedge shows
    plain_params = get_model(plain).init_params(plain, np.random.default_rng(0), np.float64)
    i, j = 14, 14
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    fields = [receptive_field(plain_params, plain, i, j), receptive_field(params64, config, i, j)]
    regions = [theoretical_region(plain, i, j), theoretical_region(config, i, j)]
    save_figure(receptive_field_figure(fields, ["plain PixelCNN, 3 x 3 layers (init)", f"{config['model']} (pretrained)"],
                                       i, j, regions=regions), out / "receptive_field.png")
    save_figure(masks_figure(5), out / "masks.png")

    per_pixel = nll_per_pixel(params, config, test)                        # (N, H, W) nats
    nll = per_pixel.mean(axis=0)
    save_figure(per_pixel_nll_figure(nll, title=f"Pretrained {config['model']} model: mean NLL of each pixel position\n"
                                                f"over the {len(test):,} test digits ({nll.mean():.4f} nats/pixel)"),
                out / "per_pixel_nll.png")
    save_figure(likelihood_extremes_figure(binarize(test), per_pixel.sum(axis=(1, 2))), out / "likelihood_extremes.png")
    if args.run:
        history = load_checkpoint(Path(args.run) / "checkpoint.npz").meta["history"]
        save_figure(loss_curve_figure(history), out / "loss_curve_default.png")
    print(f"wrote the figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
