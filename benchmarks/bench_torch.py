"""Seconds per training step of the default model: ours (NumPy/Numba), PyTorch in one
process, PyTorch in N processes (DistributedDataParallel over gloo, CPU).

    python benchmarks/bench_torch.py                   # 3 rounds of 5 timed steps per side
    python benchmarks/bench_torch.py --rounds 5 --steps 8 --nproc 2

Each side runs the training loop its script runs (train.training_steps for ours,
pixelcnn_np.torch_engine.torch_training_steps for PyTorch) on the default preset's model of
train_mnist.py (the dilated PixelCNN since 2026-11-25; the Gated PixelCNN before), global batch 64, in a fresh subprocess started by this one;
the N-process side is started with torchrun. The sides take turns, round after round,
so that a machine shared with other work slows all of them alike; the medians over all
timed steps are printed (after 2 untimed warm-up steps per subprocess). Every side uses
all the cores: --threads threads in one process, or one thread in each of N processes.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 2


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="turns of each side (default 3)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per side and round (default 5)")
    p.add_argument("--nproc", type=int, default=2, help="processes of the multi-process side (default 2)")
    p.add_argument("--threads", type=int, default=2, help="threads of the one-process sides (default 2)")
    p.add_argument("--worker", choices=("numpy", "torch"), help=argparse.SUPPRESS)
    return p.parse_args()


def step_images(n, seed=0):
    """n uint8 28x28 images, 0 or 255, about 13% ink like MNIST (the data does not change the cost)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return ((rng.random((n, 28, 28)) < 0.13) * 255).astype(np.uint8)


def timed(steps, n):
    """Seconds of each of n steps of a training-step generator, after WARMUP untimed ones."""
    times = []
    for i in range(WARMUP + n):
        t0 = time.perf_counter()
        next(steps)
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    return times


def worker(side, n):
    """Run in a subprocess: time n steps of one side, print {"times": [...]} (rank 0 only)."""
    import pixelcnn_np  # noqa: F401
    import numpy as np

    from pixelcnn_np.presets import resolve, training_parser as build_parser
    from pixelcnn_np.adam import adam_init
    from pixelcnn_np.models import get_model

    args = build_parser().parse_args([])                 # the default preset
    config, run = resolve(args)
    params = get_model(config).init_params(config, np.random.default_rng(0))
    images = step_images(args.batch_size * (WARMUP + n))
    common = dict(epochs=1, batch_size=args.batch_size, lr=args.lr, seed=0)
    rank = 0
    if side == "numpy":
        from pixelcnn_np.train import training_steps
        times = timed(training_steps(params, adam_init(params), images, config, **common), n)
    else:
        import torch
        from pixelcnn_np import torch_engine as tt
        from pixelcnn_np.torch_bridge import to_torch
        rank, world, device = tt.distributed_setup("cpu")
        module = to_torch(params, config)
        net = module if world == 1 else torch.nn.parallel.DistributedDataParallel(module, forward_sync_buffers=False)
        steps = tt.torch_training_steps(net, tt.named_parameters(module, config),
                                        tt.adam_state_to_torch(adam_init(params), device), images,
                                        np.zeros(len(images), np.int64), config, rank=rank, world=world, **common)
        times = timed(steps, n)
        if world > 1:
            torch.distributed.destroy_process_group()
    if rank == 0:
        print(json.dumps({"times": times}))


def launch(side, nproc, threads, steps):
    """Start one side in a subprocess; return its step times."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    me = [str(Path(__file__).resolve()), "--worker", "numpy" if side == "numpy" else "torch", "--steps", str(steps)]
    if nproc > 1:
        runner = [shutil.which("torchrun")] if shutil.which("torchrun") else [sys.executable, "-m", "torch.distributed.run"]
        cmd = [*runner, "--nproc_per_node", str(nproc), *me]
        env["OMP_NUM_THREADS"] = str(max(1, threads // nproc))
    else:
        cmd = [sys.executable, *me]
        env.update(OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{side} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])["times"]


def main():
    args = parse()
    if args.worker:
        return worker(args.worker, args.steps)
    sides = [("ours (NumPy/Numba)", "numpy", 1), ("PyTorch, 1 process", "torch", 1),
             (f"PyTorch, {args.nproc} processes", "torch", args.nproc)]
    times = {name: [] for name, _, _ in sides}
    for r in range(args.rounds):
        for name, side, nproc in sides:
            times[name] += launch(side, nproc, args.threads, args.steps)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {statistics.median(t):.3f} s" for n, t in times.items()),
              flush=True)
    ours = statistics.median(times[sides[0][0]])
    print(f"\nseconds per training step, the default model, batch 64, float32, {args.threads} cores "
          f"(median of {args.rounds * args.steps} steps per side):")
    for name, t in times.items():
        m = statistics.median(t)
        print(f"  {name:24s} {m:.3f} s   (min {min(t):.3f}, max {max(t):.3f}; ours / this {ours / m:.2f})")


if __name__ == "__main__":
    main()
