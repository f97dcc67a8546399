"""Train a PixelCNN on MNIST with pixelcnn_np, on the CPU.

    python examples/train_mnist.py                        # dilated PixelCNN, 15 minutes
    python examples/train_mnist.py --preset seed          # the seed PixelCNN recipe, 10 epochs
    python examples/train_mnist.py --epochs 1             # the default model, one epoch
    python examples/train_mnist.py --max-steps 50 --eval-limit 500   # a quick look: 50 steps
    python examples/train_mnist.py --resume               # continue runs/mnist
    python examples/train_mnist.py --conditional          # p(x | digit): sample a chosen digit
    python examples/train_mnist.py --dataset fashion-mnist   # or kmnist; colour: train_colour.py

Writes to --out: checkpoint.npz (weights, Adam state, config), metrics.json,
loss_curve.png and samples.png. MNIST is read from --data-dir, else from the folder in
$PIXELCNN_NP_DATA, else from ./data (downloaded there with checksums if missing).

The script is a composition of package functions:
    presets.py   the flags, the presets, and how they become a config and run settings
    run.py       the run: budget, schedule, checkpoints, resume, Ctrl-C, the final
                 evaluation; `NumpyEngine` takes the steps with the package's own
                 forward, backward and Adam
    train.py     the training loop itself (batch -> forward -> loss -> backward -> Adam)
"""

import sys

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)

from pixelcnn_np import cli
from pixelcnn_np.memory import sampling_memory, training_step_memory
from pixelcnn_np.presets import parse_training_flags, training_parser
from pixelcnn_np.run import NumpyEngine, UsageError, train_from_flags


def build_parser():
    return training_parser()


def main(argv=None, parser=None):
    parser = parser or build_parser()
    args, config, run = parse_training_flags(parser, argv)
    cli.check_memory(parser, training_step_memory(config, run["batch_size"]), reduce="--batch-size or --hidden")
    if args.n_samples:
        cli.check_memory(parser, sampling_memory(config, args.n_samples), reduce="--n-samples")
    data = cli.load_data(args.data_dir, download=not args.no_download, dataset=args.dataset)
    try:
        return train_from_flags(args, config, run, data, NumpyEngine)
    except UsageError as e:                            # e.g. --minutes too short to train at all
        parser.error(str(e))


if __name__ == "__main__":
    sys.exit(main())
