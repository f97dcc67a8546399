"""Train any pixelcnn_np model in PyTorch: on a GPU, or in several processes at once.

    python examples/train_torch.py --epochs 1                          # CPU, one process
    python examples/train_torch.py --preset seed --device cuda         # the seed recipe on a GPU
    torchrun --nproc_per_node 2 examples/train_torch.py --epochs 1     # 2 processes (DDP over gloo)
    torchrun --nproc_per_node 4 examples/train_torch.py --device cuda  # 4 GPUs (DDP over NCCL)

Only the engine differs from train_mnist.py. The flags are its flags (plus --device), the
data order and binarization are its own (train.epoch_order, train.prepare_batch), and so
are the learning-rate schedules, metrics.json and checkpoint.npz: weights come back
through torch_bridge.from_torch, Adam's state is stored in pixelcnn_np.adam's layout. A
run can therefore move between the two scripts with --resume, and whatever PyTorch
trained is sampled, evaluated and drawn by pixelcnn_np (examples/sample.py, evaluate.py).
The network is `torch_bridge.to_torch(params, config)`, started from the same initial
weights as train_mnist.py (model.init_params with the same --seed).

N processes, one global batch. Every rank draws the same global batch of B images (same
permutation, same binarization), keeps its own contiguous share of the rows, and
back-propagates

    loss_r = N / (B D) * sum_{n in rank r's rows} sum_p NLL(x_np)          (D = H * W)

DistributedDataParallel averages gradients over ranks, (1/N) sum_r d loss_r / d theta =
d/d theta [(1/(B D)) sum_{all n, p} NLL]: the gradient of the mean NLL of the whole batch,
which one process computes, even when B is not a multiple of N. Every rank then takes the
same Adam step, so N processes follow one process's trajectory (to float rounding).
Only rank 0 writes files or prints.

Adam is `adam_step_torch`, pixelcnn_np.adam.adam_step line for line (eps added after
sqrt(v_hat)): given the same gradients it gives the same numbers, so a run resumed in the
other framework continues the same trajectory.
"""

import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from pixelcnn_np import checkpoint as ckpt
from pixelcnn_np.cli import positive_int
from pixelcnn_np.conditioning import n_classes
from pixelcnn_np.data import DataError, binarize, load_mnist
from pixelcnn_np.losses import per_pixel_nll
from pixelcnn_np.metrics import format_report, nll_report
from pixelcnn_np.models import model_input
from pixelcnn_np.plots import loss_curve_figure, samples_figure, save_figure
from pixelcnn_np.progress import Progress, format_seconds
from pixelcnn_np.sampling import sample_cached
from pixelcnn_np.torch_bridge import parameter_names, from_torch, to_torch
from pixelcnn_np.train import NonFiniteError, Step, epoch_order, prepare_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mnist import (EVAL_BATCH, append_epoch, atomic_write_text, build_parser as numpy_parser,  # noqa: E402
                         cosine_rate, metrics_doc, print_table, resolve, starting_state, time_sampling)


# ----------------------------------------------------------------------------------
# One training step in PyTorch
# ----------------------------------------------------------------------------------

def shard(n, rank, world):
    """The rows of an n-row global batch that `rank` of `world` processes takes: a
    contiguous slice; the shares differ by at most one row and cover all n."""
    return slice(n * rank // world, n * (rank + 1) // world)


def named_parameters(module, config):
    """{our parameter name: the module's nn.Parameter}, e.g. "v1.w" -> layers.1.v.weight."""
    return {ours: module.get_parameter(theirs) for ours, theirs in parameter_names(config).items()}


def adam_state_to_torch(opt_state, device):
    """Our Adam state {"t", "m": {name: array}, "v": {name: array}} -> the same with tensors."""
    return {"t": int(opt_state["t"]),
            "m": {k: torch.from_numpy(np.array(a)).to(device) for k, a in opt_state["m"].items()},
            "v": {k: torch.from_numpy(np.array(a)).to(device) for k, a in opt_state["v"].items()}}


def adam_state_from_torch(state):
    """The inverse of `adam_state_to_torch`: tensors -> NumPy arrays, same layout."""
    return {"t": int(state["t"]),
            "m": {k: t.detach().cpu().numpy() for k, t in state["m"].items()},
            "v": {k: t.detach().cpu().numpy() for k, t in state["v"].items()}}


@torch.no_grad()
def adam_step_torch(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    """pixelcnn_np.adam.adam_step in PyTorch: the same formula in the same order of
    operations, so the same gradients give the same numbers.

    params {name: nn.Parameter}, updated in place (DistributedDataParallel holds these
    very tensors); grads {name: tensor}; state {"t", "m": {name: tensor}, "v": ...},
    updated in place.
    """
    t = state["t"] + 1
    for k, p in params.items():
        g = grads[k]
        m = b1 * state["m"][k] + (1 - b1) * g          # m_t = b1 m_{t-1} + (1 - b1) g
        v = b2 * state["v"][k] + (1 - b2) * g * g      # v_t = b2 v_{t-1} + (1 - b2) g^2
        m_hat = m / (1 - b1 ** t)                      # bias correction: E[m_t] = (1 - b1^t) E[g]
        v_hat = v / (1 - b2 ** t)                      # likewise for the second moment
        p -= lr * m_hat / (torch.sqrt(v_hat) + eps)    # p_t = p_{t-1} - lr m_hat / (sqrt(v_hat) + eps)
        state["m"][k], state["v"][k] = m, v
    state["t"] = t


def batch_tensors(pixels, labels, config, device, dtype):
    """pixels (B, H, W) 0/1 or 0..255, labels (B,) -> the network's input x (B, 1, H, W),
    the loss target (x itself for binary pixels, (B, H, W) int64 for 8-bit) and the
    labels as int64 (B,) for a class-conditional config, else None."""
    x = torch.from_numpy(model_input(pixels, config, dtype)).to(device)
    target = x if config["pixels"] == "binary" else torch.from_numpy(pixels.astype(np.int64)).to(device)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device) if n_classes(config) > 0 else None
    return x, target, y


def run_network(net, x, y):
    """logits (B, c_out, H, W) = net(x), or net(x, labels) for a class-conditional model."""
    return net(x) if y is None else net(x, y)


def summed_nll(logits, target, config):
    """-sum of log p(x_p | x_<p) over every pixel of the batch, in nats (a 0-d tensor)."""
    if config["pixels"] == "binary":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    return F.cross_entropy(logits, target, reduction="sum")


def sum_over_ranks(value, device):
    """value (a float) summed over all processes (itself with one process)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item()


def from_rank0(value, device):
    """Rank 0's value of a float, on every rank (so that clock-driven decisions agree)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return t.item()


def check_finite_torch(loss, grads, step):
    """train.check_finite for tensors: raise NonFiniteError naming the step and the first
    bad parameter (one device-to-host sync for all of them)."""
    if not math.isfinite(loss):
        raise NonFiniteError(f"step {step}: the loss is {loss}")
    finite = torch.stack([torch.isfinite(g).all() for g in grads.values()]).cpu().numpy()
    if not finite.all():
        name = list(grads)[int(np.argmin(finite))]
        raise NonFiniteError(f"step {step}: the gradient of {name!r} has non-finite values")


def torch_training_steps(net, params, opt_state, train_images, train_labels, config, *, epochs, batch_size,
                         lr, seed, binarization="threshold", start_epoch=0, start_batch=0, rank=0, world=1):
    """train.training_steps with PyTorch doing forward, backward and Adam.
    Yields a `Step` after every update; its params and opt_state are the tensors, updated in place.

    net: to_torch(...) moved to its device, or that module wrapped in DistributedDataParallel;
    params: named_parameters(module, config); opt_state: adam_state_to_torch(...).
    train_images (N, H, W) uint8, train_labels (N,) (read only by a conditional config);
    lr a float or a function step -> float. Every one of the `world` ranks runs this
    on the same global batches and takes rows shard(B, rank, world) of each.
    """
    device, dtype = next(iter(params.values())).device, next(iter(params.values())).dtype
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    n, D = len(train_images), config["height"] * config["width"]
    per_epoch = -(-n // batch_size)                                      # ceil(n / batch_size)
    step = opt_state["t"]
    for epoch in range(start_epoch, epochs):
        order = epoch_order(n, seed, epoch)
        for b in range(start_batch if epoch == start_epoch else 0, per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]                              # the global batch
            pixels = prepare_batch(train_images[idx], config, binarization, seed, epoch, b)  # (B, H, W)
            mine = shard(len(idx), rank, world)                                           # this rank's rows
            x, target, y = batch_tensors(pixels[mine], train_labels[idx][mine], config, device, np_dtype)
            logits = run_network(net, x, y)                                               # (B_r, c_out, H, W)
            nll = summed_nll(logits, target, config)                                      # nats, rank's rows
            count = len(idx) * D                                                          # pixels, all ranks
            (nll * (world / count)).backward()           # DDP averages over ranks: the gradient of the batch mean
            loss = sum_over_ranks(nll.item(), device) / count                             # nats/pixel
            grads = {k: p.grad for k, p in params.items()}
            check_finite_torch(loss, grads, step + 1)
            rate = lr(step) if callable(lr) else lr
            adam_step_torch(params, grads, opt_state, rate)
            for p in params.values():
                p.grad = None
            step += 1
            yield Step(params, opt_state, loss, epoch, b + 1, per_epoch, step)


@torch.no_grad()
def test_nll(module, config, images, labels, rank=0, world=1, batch_size=EVAL_BATCH):
    """Mean NLL in nats/pixel of images (N, H, W) uint8, as train.evaluate computes it
    (binary models see threshold-binarized images). Each rank scores its share; the sums
    are added over ranks."""
    p = next(module.parameters())
    np_dtype = np.float64 if p.dtype == torch.float64 else np.float32
    mine = shard(len(images), rank, world)
    total = 0.0
    for s in range(mine.start, mine.stop, batch_size):
        e = min(s + batch_size, mine.stop)
        pixels = images[s:e]
        if config["pixels"] == "binary":
            pixels = binarize(pixels, "threshold")
        x, _, y = batch_tensors(pixels, labels[s:e], config, p.device, np_dtype)
        logits = run_network(module, x, y).cpu().numpy()                                  # (b, c_out, H, W)
        total += float(per_pixel_nll(logits, pixels, config["pixels"]).astype(np.float64).sum())
    return sum_over_ranks(total, p.device) / (len(images) * config["height"] * config["width"])


def synthetic_mnist(n):
    """For tests: n random 28x28 images (uint8 0..255) and labels 0..9 to train on, and n
    more to test on, in load_mnist's layout; the same n gives the same arrays everywhere."""
    rng = np.random.default_rng(20161)
    return {"train_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n, dtype=np.uint8)}


# ----------------------------------------------------------------------------------
# The script
# ----------------------------------------------------------------------------------

def build_parser():
    """train_mnist.py's flags, plus --device and the testing flag --synthetic."""
    p = numpy_parser()
    p.description = ("Train a pixelcnn_np model in PyTorch (CPU or CUDA; several processes under torchrun),\n"
                     "with the flags, data order and checkpoint.npz of train_mnist.py. Without flags: the\n"
                     "default preset, a Gated PixelCNN trained for 15 minutes.")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): cuda when available, else cpu. Under torchrun, rank r uses cuda:LOCAL_RANK")
    p.add_argument("--synthetic", type=positive_int, default=None, metavar="N",
                   help="for testing: train and test on N random images instead of MNIST")
    return p


def distributed_setup(device_flag):
    """(rank, world size, torch.device), joining the process group when torchrun started us."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device_flag == "cuda" or (device_flag == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def load_data(args, rank):
    """MNIST (or --synthetic images). Rank 0 reads (and downloads) first, the others after it."""
    if args.synthetic:
        return synthetic_mnist(args.synthetic)
    if rank > 0:
        dist.barrier()                                   # wait for rank 0's download
    data = load_mnist(args.data_dir, download=not args.no_download and rank == 0)
    if rank == 0 and dist.is_initialized():
        dist.barrier()
    return data


def time_forward(module, config, n):
    """Seconds for one forward pass of the torch module on n images (second of two calls)."""
    x = torch.zeros((n, 1, config["height"], config["width"]), dtype=next(module.parameters()).dtype,
                    device=next(module.parameters()).device)
    y = torch.zeros(n, dtype=torch.int64, device=x.device) if n_classes(config) > 0 else None
    with torch.no_grad():
        run_network(module, x, y)
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_network(module, x, y).sum().item()
    return time.perf_counter() - t0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    ckpt_path = out / "checkpoint.npz"
    if args.resume and not ckpt_path.exists():
        parser.error(f"--resume: no checkpoint at {ckpt_path} (start without --resume, or set --out)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device")
    try:
        config, run = resolve(args)
    except ValueError as e:
        parser.error(str(e))
    rank, world, device = distributed_setup(args.device)
    try:
        return train(args, config, run, out, ckpt_path, rank, world, device)
    finally:
        if dist.is_initialized():
            dist.barrier()                  # leave together: a rank that exits early can abort the others
            dist.destroy_process_group()


def train(args, config, run, out, ckpt_path, rank, world, device):
    """main() once the flags are read and the processes are joined; returns the exit code."""
    log = print if rank == 0 else (lambda *a, **k: None)
    D = config["height"] * config["width"]
    try:
        data = load_data(args, rank)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    train_images, test_images, test_labels = data["train_images"], data["test_images"], data["test_labels"]
    if args.eval_limit:
        test_images, test_labels = test_images[:args.eval_limit], test_labels[:args.eval_limit]
    epoch_test = (test_images, test_labels)
    if args.minutes is not None and not args.eval_limit:     # with a time budget, epoch ends use a subset
        epoch_test = (test_images[:2000], test_labels[:2000])

    try:
        params, opt_state, start_epoch, start_batch, history, elapsed0 = starting_state(args, config, run, ckpt_path,
                                                                                        log=log)
    except ckpt.CheckpointError as e:
        print(f"error: cannot resume: {e}", file=sys.stderr)
        return 2

    module = to_torch(params, config).to(device)
    tparams, topt = named_parameters(module, config), adam_state_to_torch(opt_state, device)
    net = module
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False)           # the only buffers are the fixed masks
    n_params = sum(p.size for p in params.values())
    per_epoch = -(-len(train_images) // args.batch_size)
    budget = f"{args.minutes:g} minutes" if args.minutes else f"{args.epochs} epochs"
    log(f"model {config['model']} ({n_params:,} parameters), {budget}, batch {args.batch_size}, "
        f"lr {args.lr:g} ({args.schedule}); {len(train_images)} training images; PyTorch on {device}"
        + (f", {world} processes" if world > 1 else "") + f"; writing to {out}")

    t_start = time.perf_counter()

    def elapsed():
        return elapsed0 + time.perf_counter() - t_start

    # The training budget (as in train_mnist.py): the wall-clock budget minus the expected cost
    # of the final evaluation (shared by the ranks) and of the samples (rank 0, in NumPy).
    train_seconds = None
    if args.minutes:
        t_eval = time_forward(module, config, EVAL_BATCH) * len(test_images) / EVAL_BATCH / world
        t_samples = time_sampling(params, config, args.n_samples) if args.n_samples and rank == 0 else 0.0
        train_seconds = from_rank0(args.minutes * 60 - 1.1 * (t_eval + t_samples) - 10, device)
        log(f"time budget: {train_seconds / 60:.1f} min of training, then about {t_eval:.0f} s of "
            f"evaluation and {t_samples:.0f} s of sampling")
        if train_seconds <= 0:
            print(f"error: --minutes {args.minutes:g} leaves no time to train", file=sys.stderr)
            return 2
    total_steps = args.epochs * per_epoch

    def learning_rate(step):
        if args.schedule == "constant":
            return args.lr
        frac = from_rank0(elapsed(), device) / train_seconds if train_seconds else step / total_steps
        return cosine_rate(args.lr, frac)

    state = {"epoch": start_epoch, "batch": start_batch}

    def save():
        if rank == 0:
            meta = {"epoch": state["epoch"], "batch": state["batch"], "run": run, "history": history,
                    "elapsed": elapsed()}
            ckpt.save_checkpoint(ckpt_path, from_torch(module)[0], config, adam_state_from_torch(topt), meta)

    def write_metrics():
        if rank == 0:
            atomic_write_text(out / "metrics.json", json.dumps(metrics_doc(config, run, history), indent=1))

    # Ctrl-C / SIGTERM (torchrun passes them to every rank) only raise a flag: Adam updates
    # the weights in place, so a step must not be cut in half. The ranks stop together,
    # after the step in progress, and rank 0 saves it.
    signals = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: signals.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    bar = None
    try:
        steps = torch_training_steps(net, tparams, topt, train_images, data["train_labels"], config,
                                     epochs=args.epochs, batch_size=args.batch_size, lr=learning_rate,
                                     seed=args.seed, binarization=args.binarize, start_epoch=start_epoch,
                                     start_batch=start_batch, rank=rank, world=world)
        for s in steps:
            if bar is None:
                label = f"epoch {s.epoch + 1}" + ("" if args.minutes else f"/{args.epochs}")
                bar = Progress(per_epoch, label, enabled=rank == 0 and not args.no_progress)
            state.update(epoch=s.epoch, batch=s.batch)
            history["step_loss"].append((s.step, s.loss))
            bar.update(s.batch, loss=s.loss)
            end_of_epoch = s.batch == s.batches_per_epoch
            stop = ((args.max_steps is not None and s.step >= args.max_steps)
                    or (train_seconds is not None and from_rank0(elapsed(), device) >= train_seconds)
                    or (end_of_epoch and s.epoch + 1 == args.epochs))      # the final evaluation follows
            if end_of_epoch:
                bar.close()
                bar = None
                state.update(epoch=s.epoch + 1, batch=0)
                if not stop:
                    test = test_nll(module, config, *epoch_test, rank, world)
                    if rank == 0:
                        append_epoch(history, s, test, len(epoch_test[0]), elapsed(), config)
                save()
                write_metrics()
            elif s.step % args.save_every == 0 or stop:
                save()
            if sum_over_ranks(len(signals), device) > 0:           # interrupted, on some rank
                if bar is not None:
                    bar.close()
                save()
                if rank == 0:
                    print(f"interrupted: saved {ckpt_path} at step {topt['t']}; continue with --resume",
                          file=sys.stderr)
                return 130
            if stop:
                break
    except NonFiniteError as e:
        if bar is not None:
            bar.close()
        if rank == 0:
            print(f"error: {e}. Stopped; the last good checkpoint is {ckpt_path}. Try a smaller --lr.",
                  file=sys.stderr)
        return 1
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if bar is not None:
        bar.close()

    # Final evaluation on every test image (or --eval-limit of them), shared by the ranks.
    test = test_nll(module, config, test_images, test_labels, rank, world)
    if rank != 0:
        return 0
    step = topt["t"]
    recent = [v for st, v in history["step_loss"] if st > step - per_epoch]
    final = {"epoch": round(state["epoch"] + state["batch"] / per_epoch, 3), "step": step,
             "train": float(np.mean(recent)) if recent else float("nan"), "test": test,
             "seconds": elapsed(), "final": True, "test_images": len(test_images)}
    history["epochs"] = [e for e in history["epochs"] if e["step"] != step] + [final]
    save()
    write_metrics()
    save_figure(loss_curve_figure(history), out / "loss_curve.png")
    if args.n_samples:                  # drawn by pixelcnn_np itself, from the weights PyTorch trained
        params = from_torch(module)[0]
        digits = np.arange(args.n_samples) % n_classes(config) if n_classes(config) > 0 else None
        sbar = Progress(D, f"sampling {args.n_samples}", enabled=not args.no_progress)
        imgs = sample_cached(params, config, args.n_samples, np.random.default_rng(args.seed),
                             progress=lambda d, t: sbar.update(d), labels=digits)
        sbar.close()
        save_figure(samples_figure(imgs, f"{args.n_samples} samples (raster scan, cached)",
                                   vmax=1 if config["pixels"] == "binary" else 255), out / "samples.png")
    print_table(history, D)
    print(f"done: {step} steps, {format_seconds(elapsed())} wall time; "
          f"test {format_report(nll_report(test, D))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
