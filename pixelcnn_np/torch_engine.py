"""Training in PyTorch: the engine examples/train_torch.py hands to run.train (imports torch).

The data order and binarization are train.py's own (train.epoch_order,
train.prepare_batch), so are the schedules, metrics.json and checkpoint.npz (run.py):
weights come back through torch_bridge.from_torch, Adam's state is stored in
pixelcnn_np.adam's layout. A run can therefore move between train_mnist.py and
train_torch.py with --resume, and whatever PyTorch trained is sampled, evaluated and
drawn by pixelcnn_np. The network is `torch_bridge.to_torch(params, config)`, started
from the weights model.init_params gives for the run's seed.

N processes, one global batch. Every rank draws the same global batch of B images (same
permutation, same binarization), keeps its own contiguous share of the rows (`shard`),
and back-propagates

    loss_r = N / (B D) * sum_{n in rank r's rows} sum_p NLL(x_np)          (D = H * W, colour 3 H W)

DistributedDataParallel averages gradients over ranks, (1/N) sum_r d loss_r / d theta =
d/d theta [(1/(B D)) sum_{all n, p} NLL]: the gradient of the mean NLL of the whole batch,
which one process computes, even when B is not a multiple of N. Every rank then takes the
same Adam step, so N processes follow one process's trajectory (to float rounding).
Only rank 0 writes files or prints.

Adam is `adam_step_torch`, pixelcnn_np.adam.adam_step line for line (eps added after
sqrt(v_hat)): given the same gradients it gives the same numbers, so a run resumed in the
other framework continues the same trajectory.
"""

import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .cli import load_data as load_mnist_or_exit
from .conditioning import n_classes
from .data import binarize_test_set
from .models import dims_per_image, model_input, per_pixel_nll
from .run import EVAL_BATCH
from .torch_bridge import from_torch, parameter_names, to_torch
from .train import NonFiniteError, Step, epoch_order, prepare_batch


# ----------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------

def distributed_setup(device_flag):
    """(rank, world size, torch.device), joining the process group when torchrun started us.
    device_flag "auto" (cuda when available), "cpu" or "cuda"; rank r uses cuda:LOCAL_RANK."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device_flag == "cuda" or (device_flag == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def shard(n, rank, world):
    """The rows of an n-row global batch that `rank` of `world` processes takes: a
    contiguous slice; the shares differ by at most one row and cover all n."""
    return slice(n * rank // world, n * (rank + 1) // world)


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


def synthetic_mnist(n):
    """For tests: n random 28x28 images (uint8 0..255) and labels 0..9 to train on, and n
    more to test on, in load_mnist's layout; the same n gives the same arrays everywhere."""
    rng = np.random.default_rng(20161)
    return {"train_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n, dtype=np.uint8)}


def load_data(data_dir, download, rank, synthetic=None, dataset="mnist"):
    """MNIST (or `synthetic` random images). Rank 0 reads (and downloads) first, the
    others after it; a DataError ends the script with its one line (cli.load_data)."""
    if synthetic:
        return synthetic_mnist(synthetic)
    if rank > 0:
        dist.barrier()                                   # wait for rank 0's download
    data = load_mnist_or_exit(data_dir, download=download and rank == 0, dataset=dataset)
    if rank == 0 and dist.is_initialized():
        dist.barrier()
    return data


# ----------------------------------------------------------------------------------
# One training step in PyTorch
# ----------------------------------------------------------------------------------

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
    """pixels (B, H, W) (colour (B, 3, H, W)) 0/1 or 0..255, labels (B,) -> the network's
    input x (B, c, H, W), the loss target (x itself for binary pixels, (B, c, H, W) int64
    for 8-bit) and the
    labels as int64 (B,) for a class-conditional config, else None."""
    x = torch.from_numpy(model_input(pixels, config, dtype)).to(device)
    target = x if config["pixels"] == "binary" else torch.from_numpy(
        np.asarray(pixels, dtype=np.int64).reshape(x.shape)).to(device)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device) if n_classes(config) > 0 else None
    return x, target, y


def run_network(net, x, y):
    """logits (B, c_out, H, W) = net(x), or net(x, labels) for a class-conditional model."""
    return net(x) if y is None else net(x, y)


def summed_nll(logits, target, config):
    """-sum of log p(x_p | x_<p) over every pixel (colour: sub-pixel) of the batch, in
    nats (a 0-d tensor). target (B, c, H, W); in colour each colour's P logits, R's first,
    are scored as one grey image's (models._per_colour)."""
    B, _, H, W = logits.shape
    c = target.shape[1]
    logits = logits.reshape(B * c, -1, H, W)
    target = target.reshape(B * c, 1, H, W) if config["pixels"] == "binary" else target.reshape(B * c, H, W)
    if config["pixels"] == "binary":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    if config["pixels"] == "logistic":
        return -mixture_log_prob(logits, target, config["n_mix"]).sum()
    return F.cross_entropy(logits, target, reduction="sum")


def mixture_log_prob(logits, values, n_mix):
    """log p(v) of PixelCNN++'s discretized logistic mixture in torch (autograd does the
    backward; logistic_mixture.py is the same by hand): logits (B, 3K, H, W), values
    (B, H, W) int64 0..255 -> (B, H, W). Same stable identity, same clamp of log s."""
    from .logistic_mixture import HALF_BIN, LOG_SCALE_MIN
    pi, mu = logits[:, :n_mix], logits[:, n_mix:2 * n_mix]
    log_s = torch.clamp(logits[:, 2 * n_mix:], min=LOG_SCALE_MIN)
    v = values[:, None]
    x = v.to(logits.dtype) * (2.0 / 255.0) - 1.0
    inv_s = torch.exp(-log_s)
    a, b = (x - mu + HALF_BIN) * inv_s, (x - mu - HALF_BIN) * inv_s
    log_mass = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(-2 * HALF_BIN * inv_s))
    log_mass = torch.where(v == 0, F.logsigmoid(a), torch.where(v == 255, F.logsigmoid(-b), log_mass))
    return torch.logsumexp(torch.log_softmax(pi, dim=1) + log_mass, dim=1)


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
    n, D = len(train_images), dims_per_image(config)
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
def test_nll(module, config, images, labels=None, protocol="threshold", rank=0, world=1,
             batch_size=EVAL_BATCH, draw=0):
    """Mean NLL in nats/pixel of images (N, H, W) uint8, as train.evaluate computes it:
    binary models see the test digits of `protocol` (draw number `draw`,
    data.binarize_test_set), 8-bit ones the raw pixels; labels (N,) for a
    class-conditional model. Each rank scores its share; the sums are added over ranks."""
    p = next(module.parameters())
    np_dtype = np.float64 if p.dtype == torch.float64 else np.float32
    if config["pixels"] == "binary":
        images = binarize_test_set(images, protocol, draw)
    mine = shard(len(images), rank, world)
    total = 0.0
    for s in range(mine.start, mine.stop, batch_size):
        e = min(s + batch_size, mine.stop)
        pixels = images[s:e]
        x, _, y = batch_tensors(pixels, None if labels is None else labels[s:e], config, p.device, np_dtype)
        logits = run_network(module, x, y).cpu().numpy()                                  # (b, c_out, H, W)
        total += float(per_pixel_nll(logits, pixels, config).astype(np.float64).sum())
    return sum_over_ranks(total, p.device) / (len(images) * dims_per_image(config))


def time_forward(module, config, n):
    """Seconds for one forward pass of the torch module on n images (second of two calls)."""
    x = torch.zeros((n, config.get("channels", 1), config["height"], config["width"]), dtype=next(module.parameters()).dtype,
                    device=next(module.parameters()).device)
    y = torch.zeros(n, dtype=torch.int64, device=x.device) if n_classes(config) > 0 else None
    with torch.no_grad():
        run_network(module, x, y)
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_network(module, x, y).sum().item()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------
# The engine (see run.py for what an engine provides)
# ----------------------------------------------------------------------------------

class TorchEngine:
    """run.train's engine for PyTorch on `device`, rank `rank` of `world` processes."""
    steps_in_place = True                        # adam_step_torch updates the weights in place

    def __init__(self, config, params, opt_state, device, rank=0, world=1):
        self.config, self.device, self.rank, self.world = config, device, rank, world
        self.module = to_torch(params, config).to(device)
        self.params = named_parameters(self.module, config)
        self.opt_state = adam_state_to_torch(opt_state, device)
        self.net = self.module
        if world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.module, device_ids=[device.index] if device.type == "cuda" else None,
                forward_sync_buffers=False)       # the only buffers are the fixed masks
        self.description = f"PyTorch on {device}" + (f", {world} processes" if world > 1 else "")

    def steps(self, train_images, train_labels, **settings):
        labels = np.zeros(len(train_images), np.int64) if train_labels is None else train_labels
        return torch_training_steps(self.net, self.params, self.opt_state, train_images, labels, self.config,
                                    rank=self.rank, world=self.world, **settings)

    def test_nll(self, images, labels, protocol, progress=None):
        return test_nll(self.module, self.config, images, labels, protocol, self.rank, self.world)

    def weights(self):
        return from_torch(self.module)[0], adam_state_from_torch(self.opt_state)

    def forward_seconds(self, n):
        return time_forward(self.module, self.config, n)

    def agreed(self, value):
        return from_rank0(value, self.device)

    def anyone(self, flag):
        return sum_over_ranks(float(flag), self.device) > 0
