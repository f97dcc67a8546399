"""The README's colour figures: the sub-pixel masks, each colour's receptive field, and
samples and completions of a colour checkpoint.

    python examples/colour_figures.py --checkpoint runs/colour/checkpoint.npz --data-dir ../shared/mnist
    python examples/colour_figures.py --only masks receptive_field         # no checkpoint needed

Writes to --out (default examples/figures): colour_masks.png (masks.subpixel_mask of a
3x3 layer), colour_receptive_field_<model>.png for a small plain and a small gated
PixelCNN at their initial weights (which sub-pixels are reached is fixed by the
architecture), and, from --checkpoint, colour_samples.png and colour_completions.png
(the checkpoint's own test set, top half kept).
"""

import sys
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np import cli
from pixelcnn_np.models import describe, get_model, make_config
from pixelcnn_np.plots import (colour_receptive_field_figure, completion_figure, samples_figure, save_figure,
                               subpixel_masks_figure)
from pixelcnn_np.receptive_field import receptive_field, theoretical_region
from pixelcnn_np.sampling import sample_cached

HERE = Path(__file__).resolve().parent
FIGURES = ["masks", "receptive_field", "samples", "completions"]


def build_parser():
    p = cli.OneLineParser(description="Draw the colour figures of the README.")
    p.add_argument("--checkpoint", default=None, help="a colour checkpoint, for the samples and completions")
    p.add_argument("--data-dir", default=None, help="folder of the checkpoint's dataset (for the completions)")
    p.add_argument("--only", nargs="+", choices=FIGURES, default=FIGURES, help="draw only these figures")
    p.add_argument("--n", type=cli.positive_int, default=36, help="samples to draw (default 36)")
    p.add_argument("--out", default=str(HERE / "figures"))
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    parser.check_output("--out", args.out, folder=True)
    want, out = set(args.only), Path(args.out)
    needs_checkpoint = want & {"samples", "completions"}
    ck = None
    if needs_checkpoint:
        if args.checkpoint is None:
            parser.error(f"--only {' '.join(sorted(needs_checkpoint))} needs --checkpoint (a colour checkpoint)")
        ck = cli.open_checkpoint(parser, args.checkpoint)
        if ck.config.get("channels") != 3:
            parser.error(f"{args.checkpoint} is a grey model ({describe(ck.config)}); these figures need a colour one")
    out.mkdir(parents=True, exist_ok=True)

    if "masks" in want:
        save_figure(subpixel_masks_figure(3), out / "colour_masks.png")

    if "receptive_field" in want:
        i, j = 5, 5
        for name, config in [("pixelcnn", make_config("pixelcnn", n_layers=2, kernel_size=3, hidden=48,
                                                      channels=3, height=10, width=10)),
                             ("gated", make_config("gated", hidden=48, dilations=[1, 1, 1], channels=3,
                                                   height=10, width=10))]:
            params = get_model(config).init_params(config, np.random.default_rng(0), np.float64)
            fields = np.stack([receptive_field(params, config, i, j, colour=k) for k in range(3)])
            regions = np.stack([theoretical_region(config, i, j, colour=k) for k in range(3)])
            title = f"{describe(config)}, 3 layers of 3x3, at its initial weights"
            save_figure(colour_receptive_field_figure(fields, i, j, title, regions),
                        out / f"colour_receptive_field_{name}.png")

    if ck is not None:
        config, params = ck.config, ck.params
        vmax = 1 if config["pixels"] == "binary" else 255
        if "samples" in want:
            images = sample_cached(params, config, args.n, np.random.default_rng(0))
            save_figure(samples_figure(images, f"{args.n} samples ({describe(config)}, T=1)", vmax=vmax),
                        out / "colour_samples.png")
        if "completions" in want:
            dataset = ck.meta.get("run", {}).get("dataset", "colour-mnist-v1")
            data = cli.load_data(args.data_dir, splits=("test",), dataset=dataset)
            originals, _ = cli.split(data, "test", config, limit=8)
            if config["pixels"] == "binary":
                originals = (originals >= 128).astype(np.uint8)
            rows = config["height"] // 2
            done = sample_cached(params, config, 24, np.random.default_rng(0), images=np.tile(originals, (3, 1, 1, 1)),
                                 start=rows * config["width"])
            save_figure(completion_figure(originals, rows, done.reshape((3,) + originals.shape), vmax=vmax),
                        out / "colour_completions.png")
    print(f"wrote the colour figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
