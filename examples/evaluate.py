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
each test digit's true label y. Only the test files of MNIST are read.
"""

import json
import sys

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)

from pixelcnn_np import cli
from pixelcnn_np.data import DATA_DIR_ENV
from pixelcnn_np.memory import forward_memory
from pixelcnn_np.metrics import format_report, nll_report
from pixelcnn_np.datasets import DATASETS
from pixelcnn_np.models import dims_per_image
from pixelcnn_np.progress import Progress
from pixelcnn_np.train import evaluate


def build_parser():
    p = cli.OneLineParser(description="Test NLL of a pixelcnn_np checkpoint.")
    p.add_argument("--checkpoint", default=None, help=cli.checkpoint_help())
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None,
                   help="test set to evaluate on (default: the one the checkpoint was trained on, else mnist)")
    p.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${DATA_DIR_ENV}, else ./data)")
    p.add_argument("--limit", type=cli.positive_int, default=None, help="evaluate the first N test images only")
    p.add_argument("--protocol", choices=("threshold", "stochastic"), default=None,
                   help="binary test digits: threshold (pixel >= 128) or stochastic (fixed-seed "
                        "Bernoulli(pixel/255) draws, as in the papers) (default: the checkpoint's own, "
                        "else threshold)")
    p.add_argument("--draws", type=cli.positive_int, default=1,
                   help="with --protocol stochastic: the mean over this many test-set draws (default 1)")
    p.add_argument("--backend", choices=("numpy", "torch"), default="numpy")
    p.add_argument("--batch-size", type=cli.positive_int, default=100)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing MNIST files")
    return p


def torch_nll(params, config, images, batch_size, labels=None, protocol="threshold", draws=1):
    """Mean NLL (nats/pixel) computed by the PyTorch twin of the model, over `draws` test sets."""
    from pixelcnn_np.torch_bridge import to_torch
    from pixelcnn_np.torch_engine import test_nll
    if config["pixels"] != "binary" or protocol == "threshold":
        draws = 1
    module = to_torch(params, config).eval()
    return sum(test_nll(module, config, images, labels, protocol, batch_size=batch_size, draw=k)
               for k in range(draws)) / draws


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    path = cli.checkpoint_path(args.checkpoint)
    ck = cli.open_checkpoint(parser, path)
    if args.protocol is None:                      # the protocol it was trained and measured under
        args.protocol = ck.meta.get("run", {}).get("test_protocol", "threshold")
    if args.backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            cli.fail("--backend torch needs PyTorch (pip install torch==2.13.0)", 2)
    dataset = args.dataset or ck.meta.get("run", {}).get("dataset", "mnist")     # the one it was trained on
    data = cli.load_data(args.data_dir, download=not args.no_download, splits=("test",), dataset=dataset)
    images, labels = cli.split(data, "test", ck.config, limit=args.limit)
    cli.check_memory(parser, forward_memory(ck.config, min(args.batch_size, len(images))), reduce="--batch-size")
    if not args.limit and not args.json:
        print(f"evaluating all {len(images)} test images (--limit N for a quicker look)", file=sys.stderr)
    if args.backend == "numpy":
        bar = Progress(len(images), "test", enabled=not args.json)

        def show(done, total):                     # total: images times draws (stochastic protocol)
            bar.total = total
            bar.update(done)
        nll = evaluate(ck.params, ck.config, images, batch_size=args.batch_size, progress=show,
                       labels=labels, protocol=args.protocol, draws=args.draws)
        bar.close()
    else:
        nll = torch_nll(ck.params, ck.config, images, args.batch_size, labels, args.protocol, args.draws)
    report = nll_report(nll, dims_per_image(ck.config))      # nats per image over H W (colour: 3 H W) numbers
    report["dataset"] = dataset
    if ck.config["pixels"] == "binary":
        report["protocol"] = args.protocol
        report["draws"] = args.draws if args.protocol == "stochastic" else 1
        how = f"{args.protocol} protocol" + (f", {args.draws} draws" if args.protocol == "stochastic" else "")
    else:
        report["protocol"], how = "8-bit pixels", "8-bit pixels"
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{path} ({ck.config['model']}, {args.backend}, {len(images)} {dataset} test images, {how}): "
              f"{format_report(report, 'dim' if ck.config.get('channels', 1) > 1 else 'pixel')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
