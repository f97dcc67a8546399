"""Test NLL of a checkpoint: nats/image, nats/pixel, bits/dim and per-pixel perplexity.

    python examples/evaluate.py --checkpoint runs/mnist/checkpoint.npz
    python examples/evaluate.py                      # the pretrained model shipped with the package
    python examples/evaluate.py --checkpoint C --backend torch --json

--backend numpy runs our own forward pass; --backend torch runs the same weights through
`pixelcnn_np.torch_bridge.to_torch` (needs `pip install torch==2.13.0`): the two agree.
Binary models are evaluated on binary test digits made by --protocol: threshold
(pixel/255 >= 0.5, the default) or stochastic (Bernoulli(pixel/255) with a fixed seed,
the protocol of the papers; --draws K averages K such test sets, draws 0..K-1);
8-bit models on the raw pixels. A class-conditional model is evaluated as p(x | y) with
each test digit's true label y.
"""

import json
import sys
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np.checkpoint import CheckpointError, load_checkpoint
from pixelcnn_np.cli import OneLineParser, positive_int
from pixelcnn_np.data import DATA_DIR_ENV, DataError, binarize_test_set, load_mnist
from pixelcnn_np.losses import per_pixel_nll
from pixelcnn_np.metrics import format_report, nll_report
from pixelcnn_np.models import get_model, model_input
from pixelcnn_np.progress import Progress
from pixelcnn_np.train import evaluate

PRETRAINED = Path(pixelcnn_np.__file__).resolve().parent / "pretrained.npz"


def build_parser():
    p = OneLineParser(description="Test NLL of a pixelcnn_np checkpoint.")
    p.add_argument("--checkpoint", default=None, help="checkpoint.npz (default: the shipped pretrained model)")
    p.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${DATA_DIR_ENV}, else ./data)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N test images only")
    p.add_argument("--protocol", choices=("threshold", "stochastic"), default="threshold",
                   help="binary test digits: threshold (pixel >= 128, default) or stochastic "
                        "(fixed-seed Bernoulli(pixel/255) draws, as in the papers)")
    p.add_argument("--draws", type=positive_int, default=1,
                   help="with --protocol stochastic: the mean over this many test-set draws (default 1)")
    p.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing MNIST files")
    return p


def torch_nll(params, config, images, batch_size, labels=None, protocol="threshold", draws=1):
    """Mean NLL (nats/pixel) computed by the PyTorch twin of the model."""
    if config["pixels"] != "binary" or protocol == "threshold":
        draws = 1
    return sum(_torch_nll(params, config, images if config["pixels"] != "binary"
                          else binarize_test_set(images, protocol, k), batch_size, labels)
               for k in range(draws)) / draws


def _torch_nll(params, config, images, batch_size, labels=None):
    import torch

    from pixelcnn_np.torch_bridge import to_torch
    module = to_torch(params, config).eval()
    dtype = next(iter(params.values())).dtype
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            pixels = images[s:s + batch_size]
            x = torch.from_numpy(model_input(pixels, config, dtype))
            if labels is None:
                logits = module(x).numpy()
            else:
                logits = module(x, torch.from_numpy(labels[s:s + batch_size].astype(np.int64))).numpy()
            total += float(per_pixel_nll(logits, pixels, config["pixels"]).sum())
            count += pixels.size
    return total / count


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    path = Path(args.checkpoint) if args.checkpoint else PRETRAINED
    if not path.exists():
        parser.error(f"no checkpoint at {path}")
    try:
        ck = load_checkpoint(path)
        get_model(ck.config)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            print("error: --backend torch needs PyTorch (pip install torch==2.13.0)", file=sys.stderr)
            return 2
    try:
        data = load_mnist(args.data_dir, download=not args.no_download)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    images = data["test_images"]
    labels = data["test_labels"].astype(np.int64) if ck.config.get("n_classes", 0) else None
    if args.limit:
        images = images[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    if args.backend == "numpy":
        bar = Progress(len(images), "test", enabled=not args.json)
        nll = evaluate(ck.params, ck.config, images, batch_size=args.batch_size, progress=lambda d, t: bar.update(d),
                       labels=labels, protocol=args.protocol, draws=args.draws)
        bar.close()
    else:
        nll = torch_nll(ck.params, ck.config, images, args.batch_size, labels, args.protocol, args.draws)
    report = nll_report(nll, ck.config["height"] * ck.config["width"])
    if ck.config["pixels"] == "binary":
        report["protocol"] = args.protocol
        report["draws"] = args.draws if args.protocol == "stochastic" else 1
        how = f"{args.protocol} protocol" + (f", {args.draws} draws" if args.protocol == "stochastic" else "")
    else:
        report["protocol"], how = "8-bit pixels", "8-bit pixels"
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{path} ({ck.config['model']}, {args.backend}, {len(images)} test images, {how}): "
              f"{format_report(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
