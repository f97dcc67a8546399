"""The training loop: batch -> forward -> loss -> backward -> Adam, and evaluation.

`training_steps` is a generator: it performs one optimizer step and yields a
`Step` describing the new state. Everything around the loop (progress bar,
checkpoints, Ctrl-C, evaluation at epoch ends) lives with the caller, so the loop
itself reads in one screen.

Determinism (what makes `--resume` exact): the order of epoch e is a permutation
drawn from `np.random.default_rng([seed, e])`, and dynamic binarization of batch b in
epoch e draws from `np.random.default_rng([seed, e, b])`. Resuming at (epoch, batch)
therefore replays exactly the batches an uninterrupted run would have seen.
"""

from dataclasses import dataclass

import numpy as np

from .adam import adam_step
from .conditioning import check_labels, n_classes
from .data import binarize, binarize_test_set
from .models import get_model, loss_and_grad, model_input, per_pixel_nll


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN or infinite."""


@dataclass
class Step:
    """The state after one optimizer step."""
    params: dict
    opt_state: dict
    loss: float          # training NLL of this batch, nats/pixel
    epoch: int           # the epoch this step belongs to
    batch: int           # batches of this epoch done (the next one to run on resume)
    batches_per_epoch: int
    step: int            # optimizer steps done in total


def epoch_order(n, seed, epoch):
    """The permutation of the n training images used in `epoch`."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def prepare_batch(raw, config, binarization, seed, epoch, batch):
    """uint8 images (B, H, W) 0..255 -> pixels the model predicts (B, H, W)."""
    if config["pixels"] != "binary":               # 8-bit pixels: softmax or logistic mixture
        return raw
    rng = np.random.default_rng([seed, epoch, batch]) if binarization == "dynamic" else None
    return binarize(raw, binarization, rng=rng)


def check_finite(loss, grads, step):
    """Raise NonFiniteError naming the step and the first bad parameter."""
    if not np.isfinite(loss):
        raise NonFiniteError(f"step {step}: the loss is {loss}")
    for name, g in grads.items():
        if not np.isfinite(g).all():
            raise NonFiniteError(f"step {step}: the gradient of {name!r} has non-finite values")


def training_steps(params, opt_state, train_images, config, *, epochs, batch_size, lr, seed,
                   binarization="threshold", start_epoch=0, start_batch=0, dtype=np.float32,
                   train_labels=None):
    """Yield a `Step` after every Adam update, for `epochs` epochs.

    train_images (N, H, W) uint8 0..255; lr a float or a function step -> float.
    train_labels (N,) digit labels, used (and required) only by a class-conditional config.
    start_epoch/start_batch resume mid-way with the same data order.
    """
    model = get_model(config)
    n = len(train_images)
    conditional = n_classes(config) > 0
    if conditional and train_labels is None:
        raise ValueError("a class-conditional model needs train_labels")
    per_epoch = -(-n // batch_size)                               # ceil(n / batch_size)
    step = opt_state["t"]
    for epoch in range(start_epoch, epochs):
        order = epoch_order(n, seed, epoch)
        for b in range(start_batch if epoch == start_epoch else 0, per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            pixels = prepare_batch(train_images[idx], config, binarization, seed, epoch, b)  # (B, H, W)
            x = model_input(pixels, config, dtype)                        # (B, 1, H, W)
            labels = train_labels[idx] if conditional else None           # (B,) or None
            logits, cache = model.forward(params, x, config, labels=labels)  # (B, c_out, H, W)
            loss, dlogits = loss_and_grad(logits, pixels, config)
            grads = model.backward(dlogits, cache)
            check_finite(loss, grads, step + 1)
            rate = lr(step) if callable(lr) else lr
            params, opt_state = adam_step(params, grads, opt_state, rate)
            step += 1
            yield Step(params, opt_state, loss, epoch, b + 1, per_epoch, step)


def nll_per_pixel(params, config, images, batch_size=100, progress=None, labels=None,
                  protocol="threshold", draw=0):
    """-log p(x_p | x_<p) of every pixel of every image, in nats: (N, H, W) float64
    ((N, 3, H, W) for a colour model: one number per sub-pixel).

    images (N, H, W) (colour: (N, 3, H, W)) uint8 0..255. Binary models see them binarized by the test
    `protocol` (data.binarize_test_set): "threshold" (pixel >= 128) or "stochastic"
    (draw number `draw` of the fixed-seed Bernoulli(pixel/255) test set); 8-bit models
    see the raw pixels and ignore the protocol. labels (N,): the digits, for a
    class-conditional model only (it then gives -log p(x_p | x_<p, y)). Its mean is the
    NLL in nats/pixel; its sum over (H, W) is each image's NLL in nats; its mean over N
    is the map of which positions are hard.
    """
    model = get_model(config)
    labels = check_labels(labels, len(images), config)
    dtype = next(iter(params.values())).dtype
    if config["pixels"] == "binary":
        images = binarize_test_set(images, protocol, draw)
    out = np.empty(np.shape(images), dtype=np.float64)
    for s in range(0, len(images), batch_size):
        pixels = images[s:s + batch_size]
        y = None if labels is None else labels[s:s + batch_size]
        logits, _ = model.forward(params, model_input(pixels, config, dtype), config, labels=y)  # (B, c_out, H, W)
        out[s:s + len(pixels)] = per_pixel_nll(logits, pixels, config)
        if progress is not None:
            progress(s + len(pixels), len(images))
    return out


def evaluate(params, config, images, batch_size=100, progress=None, labels=None,
             protocol="threshold", draws=1):
    """Mean test NLL in nats/pixel over `images` (N, H, W) uint8 (see `nll_per_pixel`).

    With protocol="stochastic", the mean over `draws` binarizations of the test set
    (draws 0..draws-1); the threshold protocol and 8-bit pixels have a single one.
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    if protocol != "stochastic" or config["pixels"] != "binary":
        draws = 1
    total = 0.0
    for k in range(draws):
        step = None if progress is None else (lambda d, t, k=k: progress(k * t + d, draws * t))
        total += float(nll_per_pixel(params, config, images, batch_size, step, labels, protocol, k).mean())
    return total / draws
