"""Train a PixelCNN on MNIST with pixelcnn_np, on the CPU.

    python examples/train_mnist.py                        # the seed PixelCNN, 1 epoch
    python examples/train_mnist.py --epochs 10            # the seed recipe
    python examples/train_mnist.py --max-steps 50 --eval-limit 500   # a quick look
    python examples/train_mnist.py --resume               # continue runs/mnist

Writes to --out: checkpoint.npz (weights, Adam state, config), metrics.json,
loss_curve.png and samples.png. MNIST is read from --data-dir, else from the folder in
$PIXELCNN_NP_DATA, else from ./data (downloaded there with checksums if missing).
"""

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np import checkpoint as ckpt
from pixelcnn_np.adam import adam_init
from pixelcnn_np.data import DATA_DIR_ENV, DataError, load_mnist
from pixelcnn_np.metrics import format_report, nll_report
from pixelcnn_np.models import get_model, make_config
from pixelcnn_np.plots import loss_curve_figure, samples_figure, save_figure
from pixelcnn_np.progress import Progress, format_seconds
from pixelcnn_np.sampling import sample_naive
from pixelcnn_np.train import NonFiniteError, evaluate, training_steps

# Settings that fix the data order: a resumed run must use the same ones.
RUN_KEYS = ("batch_size", "seed", "binarize")


def positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def non_negative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return v


def odd_int(text):
    v = positive_int(text)
    if v % 2 == 0:
        raise argparse.ArgumentTypeError(f"kernel size must be odd, got {v}")
    return v


def build_parser():
    p = argparse.ArgumentParser(
        description="Train a hand-written NumPy PixelCNN on MNIST (CPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=1, help="epochs to train (in total, counting resumed ones)")
    g.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many optimizer steps in total")
    g.add_argument("--batch-size", type=positive_int, default=64)
    g.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed for init, data order and sampling")
    g.add_argument("--binarize", choices=("threshold", "dynamic"), default="threshold",
                   help="threshold: pixel/255 >= 0.5; dynamic: Bernoulli(pixel/255) resampled every batch")
    g = p.add_argument_group("model")
    g.add_argument("--pixels", choices=("binary", "8bit"), default="binary",
                   help="binary: sigmoid head on binarized MNIST; 8bit: 256-way softmax on raw pixels")
    g.add_argument("--hidden", type=positive_int, default=64, help="channels of every hidden layer")
    g.add_argument("--layers", type=non_negative_int, default=6, help="number of 7x7 mask-B layers after the mask-A layer")
    g.add_argument("--kernel-size", type=odd_int, default=7, help="kernel size of the masked layers")
    g = p.add_argument_group("input/output")
    g.add_argument("--data-dir", default=None,
                   help=f"folder with the four MNIST files (default: ${DATA_DIR_ENV}, else ./data, downloading if missing)")
    g.add_argument("--out", default="runs/mnist", help="output folder")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    g.add_argument("--save-every", type=positive_int, default=100, help="checkpoint every N steps (and every epoch)")
    g.add_argument("--eval-limit", type=positive_int, default=None, help="evaluate on the first N test images only")
    g.add_argument("--n-samples", type=non_negative_int, default=16, help="digits to sample at the end (0: none)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return p


def atomic_write_text(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    ckpt_path = out / "checkpoint.npz"
    if args.resume and not ckpt_path.exists():
        parser.error(f"--resume: no checkpoint at {ckpt_path} (start without --resume, or set --out)")

    config = make_config("pixelcnn", hidden=args.hidden, n_layers=args.layers,
                         kernel_size=args.kernel_size, pixels=args.pixels)
    run = {"batch_size": args.batch_size, "seed": args.seed, "binarize": args.binarize, "lr": args.lr}

    try:
        data = load_mnist(args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    train_images, test_images = data["train_images"], data["test_images"]
    if args.eval_limit:
        test_images = test_images[:args.eval_limit]

    model = get_model(config)
    history = {"step_loss": [], "epochs": []}
    start_epoch, start_batch, elapsed0 = 0, 0, 0.0
    if args.resume:
        try:
            saved = ckpt.load_checkpoint(ckpt_path)
            ckpt.check_config_compatible(saved.config, config)
            ckpt.check_config_compatible(saved.meta["run"], run, keys=RUN_KEYS)
            ckpt.check_params_match(saved.params, model.param_shapes(config))
        except ckpt.CheckpointError as e:
            print(f"error: cannot resume: {e}", file=sys.stderr)
            return 2
        params, opt_state = saved.params, saved.opt_state
        start_epoch, start_batch = saved.meta["epoch"], saved.meta["batch"]
        history, elapsed0 = saved.meta["history"], saved.meta.get("elapsed", 0.0)
        print(f"resuming {ckpt_path}: step {opt_state['t']}, epoch {start_epoch + 1}, batch {start_batch}")
    else:
        params = model.init_params(config, np.random.default_rng(args.seed))
        opt_state = adam_init(params)
    n_params = sum(p.size for p in params.values())
    print(f"model {config['model']}: {n_params:,} parameters; {len(train_images)} training images, "
          f"batch {args.batch_size}, lr {args.lr}; writing to {out}")

    state = {"params": params, "opt": opt_state, "epoch": start_epoch, "batch": start_batch}
    t_start = time.perf_counter()

    def save():
        meta = {"epoch": state["epoch"], "batch": state["batch"], "run": run, "history": history,
                "elapsed": elapsed0 + time.perf_counter() - t_start}
        ckpt.save_checkpoint(ckpt_path, state["params"], config, state["opt"], meta)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    out.mkdir(parents=True, exist_ok=True)
    per_epoch = -(-len(train_images) // args.batch_size)
    bar = None
    try:
        steps = training_steps(params, opt_state, train_images, config, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               binarization=args.binarize, start_epoch=start_epoch, start_batch=start_batch)
        for s in steps:
            if bar is None:
                bar = Progress(per_epoch, f"epoch {s.epoch + 1}/{args.epochs}", enabled=not args.no_progress)
            state.update(params=s.params, opt=s.opt_state, epoch=s.epoch, batch=s.batch)
            history["step_loss"].append((s.step, s.loss))
            bar.update(s.batch, loss=s.loss)
            end_of_epoch = s.batch == s.batches_per_epoch
            stop = args.max_steps is not None and s.step >= args.max_steps
            if end_of_epoch:
                bar.close()
                bar = None
                state.update(epoch=s.epoch + 1, batch=0)
                record_epoch(history, s, params=s.params, config=config, test_images=test_images,
                             epoch_seconds=time.perf_counter() - t_start + elapsed0, no_progress=args.no_progress)
                save()
                atomic_write_text(out / "metrics.json", json.dumps(metrics_doc(config, run, history), indent=1))
            elif s.step % args.save_every == 0 or stop:
                save()
            if stop:
                break
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        save()
        print(f"interrupted: saved {ckpt_path} at step {state['opt']['t']}; continue with --resume", file=sys.stderr)
        return 130
    except NonFiniteError as e:
        if bar is not None:
            bar.close()
        print(f"error: {e}. Stopped; the last good checkpoint is {ckpt_path}. "
              f"Try a smaller --lr.", file=sys.stderr)
        return 1
    if bar is not None:
        bar.close()

    params = state["params"]
    if not history["epochs"] or history["epochs"][-1]["step"] != state["opt"]["t"]:
        # stopped mid-epoch (--max-steps): evaluate where we stopped
        test = evaluate(params, config, test_images)
        recent = [v for _, v in history["step_loss"][-100:]]
        history["epochs"].append({"epoch": state["epoch"] + state["batch"] / per_epoch, "step": state["opt"]["t"],
                                  "train": float(np.mean(recent)), "test": test,
                                  "seconds": elapsed0 + time.perf_counter() - t_start})
        print(f"test: {format_report(nll_report(test, 28 * 28))}")
    save()
    atomic_write_text(out / "metrics.json", json.dumps(metrics_doc(config, run, history), indent=1))
    save_figure(loss_curve_figure(history), out / "loss_curve.png")
    if args.n_samples:
        sbar = Progress(28 * 28, f"sampling {args.n_samples}", enabled=not args.no_progress)
        imgs = sample_naive(params, config, args.n_samples, np.random.default_rng(args.seed),
                            progress=lambda d, t: sbar.update(d))
        sbar.close()
        save_figure(samples_figure(imgs, f"{args.n_samples} samples (naive raster scan)",
                                   vmax=1 if config["pixels"] == "binary" else 255), out / "samples.png")
    final = history["epochs"][-1]
    print(f"done: {state['opt']['t']} steps in {format_seconds(final['seconds'])}; "
          f"test {format_report(nll_report(final['test'], 28 * 28))}")
    return 0


def record_epoch(history, s, params, config, test_images, epoch_seconds, no_progress):
    """Evaluate at the end of an epoch, print the row, append it to the history."""
    ebar = Progress(len(test_images), "  test", enabled=not no_progress)
    test = evaluate(params, config, test_images, progress=lambda d, t: ebar.update(d))
    ebar.close()
    first = s.step - s.batches_per_epoch
    train = float(np.mean([v for st, v in history["step_loss"] if st > first]))
    history["epochs"].append({"epoch": s.epoch + 1, "step": s.step, "train": train, "test": test,
                              "seconds": epoch_seconds})
    print(f"epoch {s.epoch + 1}: train {format_report(nll_report(train, 28 * 28))}")
    print(f"epoch {s.epoch + 1}: test  {format_report(nll_report(test, 28 * 28))} "
          f"[{format_seconds(epoch_seconds)} elapsed]")


def metrics_doc(config, run, history):
    rows = [dict(e, **{f"test_{k}": v for k, v in nll_report(e["test"], 28 * 28).items()}) for e in history["epochs"]]
    return {"config": config, "run": run, "epochs": rows}


if __name__ == "__main__":
    sys.exit(main())
