"""Turn a training checkpoint into the small weights-only file the package ships.

    python examples/export_pretrained.py --checkpoint runs/seed/checkpoint.npz \\
        --trained-with "python examples/train_mnist.py --preset seed" --out pixelcnn_np/pretrained.npz

A training checkpoint carries Adam's two moments (three times the weights) and the run's
whole loss history; a user who only samples or evaluates needs the weights. This script

  1. loads the checkpoint and keeps its config and weights, cast to float32;
  2. measures the test NLL of those float32 weights on all 10,000 test digits (threshold-
     binarized for binary models; p(x | y) for class-conditional ones), so the number in
     the file is the number a user will reproduce with examples/evaluate.py;
  3. writes them, with what the README needs to say how the model was made (command,
     steps, epochs, training seconds, test NLL, machine, date) in the checkpoint's meta,
     atomically (the file at --out is replaced only once the new one is complete).

It refuses to write a file larger than --max-mb (5 by default, the project's limit for
a committed checkpoint) and never overwrites --checkpoint itself.
"""

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np import cli
from pixelcnn_np.checkpoint import save_checkpoint
from pixelcnn_np.data import DATA_DIR_ENV
from pixelcnn_np.metrics import nll_report
from pixelcnn_np.models import dims_per_image
from pixelcnn_np.progress import Progress
from pixelcnn_np.train import evaluate


def build_parser():
    p = cli.OneLineParser(description="Export a training checkpoint as a weights-only float32 checkpoint "
                                      "(the file pixelcnn_np ships as pretrained.npz), with its measured test NLL.")
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz written by train_mnist.py")
    p.add_argument("--out", default=str(cli.PRETRAINED), help="file to write (default: the package's pretrained.npz)")
    p.add_argument("--trained-with", required=True,
                   help="the command that trained it, recorded in the file (e.g. \"python examples/train_mnist.py "
                        "--preset seed\")")
    p.add_argument("--machine", default=None, help="where it was trained (default: this machine's CPU model)")
    p.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${DATA_DIR_ENV} or ./data)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading MNIST")
    p.add_argument("--max-mb", type=cli.positive_float, default=5.0, help="refuse to write a larger file (10^6 bytes)")
    return p


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    src, out = Path(args.checkpoint), Path(args.out)
    if src.exists() and out.exists() and out.resolve() == src.resolve():
        parser.error("--out must not be the training checkpoint itself (it would lose its Adam state)")
    parser.check_output("--out", out)                      # before the evaluation, not after it
    ck = cli.open_checkpoint(parser, src)
    params = {k: np.asarray(v, dtype=np.float32) for k, v in ck.params.items()}
    n_weights = sum(v.size for v in params.values())
    if n_weights * 4 > args.max_mb * 1e6:
        cli.fail(f"{n_weights:,} float32 weights need {n_weights * 4 / 1e6:.2f} MB, more than --max-mb "
                 f"{args.max_mb}", 2)

    run = ck.meta.get("run", {})
    dataset, protocol = run.get("dataset", "mnist"), run.get("test_protocol", "threshold")  # as it was trained
    data = cli.load_data(args.data_dir, download=not args.no_download, dataset=dataset)
    images, labels = cli.split(data, "test", ck.config)
    bar = Progress(len(images), "test")
    nll = evaluate(params, ck.config, images, progress=lambda d, t: bar.update(d), labels=labels, protocol=protocol)
    bar.close()
    report = nll_report(nll, dims_per_image(ck.config))

    steps = ck.opt_state["t"] if ck.opt_state else ck.meta.get("steps")
    epochs = None
    if "epoch" in ck.meta and "batch" in ck.meta and "run" in ck.meta:     # a train_mnist.py checkpoint
        per_epoch = -(-len(data["train_images"]) // ck.meta["run"]["batch_size"])
        epochs = round(ck.meta["epoch"] + ck.meta["batch"] / per_epoch, 3)
    meta = {
        "trained_with": args.trained_with,
        "exported_from": str(src),
        "steps": steps,
        "epochs": epochs,
        "training_seconds": ck.meta.get("elapsed"),
        "run": run,                                        # dataset, binarization, test protocol, ...
        "test_protocol": protocol if ck.config["pixels"] == "binary" else "8-bit pixels",
        "test_nats_per_pixel": report["nats_per_pixel"],
        "test_nats_per_image": report["nats_per_image"],
        "test_bits_per_dim": report["bits_per_dim"],
        "test_images": len(images),
        "machine": args.machine or cpu_model(),
        "date": datetime.date.today().isoformat(),
    }
    # Written beside --out first, so a file already at --out survives a failure or an oversize result.
    tmp = out.with_name(f".{out.name}.export.npz")
    save_checkpoint(tmp, params, ck.config, meta=meta)
    size = tmp.stat().st_size
    if size > args.max_mb * 1e6:                          # the npz framing pushed it over
        tmp.unlink()
        cli.fail(f"the file would be {size / 1e6:.2f} MB, more than --max-mb {args.max_mb}", 2)
    os.replace(tmp, out)
    print(json.dumps(dict(meta, out=str(out), megabytes=round(size / 1e6, 3), weights=n_weights), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
