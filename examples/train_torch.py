"""Train any pixelcnn_np model in PyTorch: on a GPU, or in several processes at once.

    python examples/train_torch.py --epochs 1                          # CPU, one process
    python examples/train_torch.py --preset seed --device cuda         # the seed recipe on a GPU
    torchrun --nproc_per_node 2 examples/train_torch.py --epochs 1     # 2 processes (DDP over gloo)
    torchrun --nproc_per_node 4 examples/train_torch.py --device cuda  # 4 GPUs (DDP over NCCL)

Only the engine differs from train_mnist.py: the flags are its flags (plus --device), and
the run around the steps (budget, schedule, checkpoints, resume, Ctrl-C, metrics.json) is
the same function, run.train. Here the steps are torch_engine.TorchEngine's: PyTorch
does forward, backward and Adam, on the same data order and binarization, and hands back
NumPy weights and Adam state in pixelcnn_np's layout. A run can therefore move between
the two scripts with --resume, and whatever PyTorch trained is sampled, evaluated and
drawn by pixelcnn_np (examples/sample.py, evaluate.py). Under torchrun every process
takes its share of each global batch (torch_engine.py says why N processes follow one
process's trajectory); only rank 0 writes files or prints.
"""

import sys

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import torch
import torch.distributed as dist

from pixelcnn_np import cli
from pixelcnn_np.presets import parse_training_flags, training_parser
from pixelcnn_np.run import UsageError, train_from_flags
from pixelcnn_np.torch_engine import TorchEngine, distributed_setup, load_data


def build_parser():
    """train_mnist.py's flags, plus --device and the testing flag --synthetic."""
    p = training_parser(
        "Train a pixelcnn_np model in PyTorch (CPU or CUDA; several processes under torchrun),\n"
        "with the flags, data order and checkpoint.npz of train_mnist.py. Without flags: the\n"
        "default preset, a dilated PixelCNN trained for 15 minutes.")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): cuda when available, else cpu. Under torchrun, rank r uses cuda:LOCAL_RANK")
    p.add_argument("--synthetic", type=cli.positive_int, default=None, metavar="N",
                   help="for testing: train and test on N random images instead of MNIST")
    return p


def main(argv=None):
    parser = build_parser()
    args, config, run = parse_training_flags(parser, argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device")
    rank, world, device = distributed_setup(args.device)
    try:
        data = load_data(args.data_dir, not args.no_download, rank, args.synthetic, args.dataset)

        def engine(config, params, opt_state):
            return TorchEngine(config, params, opt_state, device, rank, world)
        try:
            return train_from_flags(args, config, run, data, engine, log=print if rank == 0 else (lambda *a: None))
        except UsageError as e:
            parser.error(str(e))
    finally:
        if dist.is_initialized():
            dist.barrier()                  # leave together: a rank that exits early can abort the others
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
