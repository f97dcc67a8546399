"""Train a PixelCNN on MNIST with pixelcnn_np, on the CPU.

    python examples/train_mnist.py                        # dilated PixelCNN, 15 minutes
    python examples/train_mnist.py --preset seed          # the seed PixelCNN recipe, 10 epochs
    python examples/train_mnist.py --epochs 1             # the default model, one epoch
    python examples/train_mnist.py --max-steps 50 --eval-limit 500   # a quick look
    python examples/train_mnist.py --resume               # continue runs/mnist
    python examples/train_mnist.py --conditional          # p(x | digit): sample a chosen digit

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
from pixelcnn_np.cli import OneLineParser, positive_int, non_negative_int, positive_float, odd_int
from pixelcnn_np.adam import adam_init
from pixelcnn_np.data import DATA_DIR_ENV, DataError, load_mnist
from pixelcnn_np.metrics import format_report, nll_report
from pixelcnn_np.models import MODELS, get_model, make_config
from pixelcnn_np.plots import loss_curve_figure, samples_figure, save_figure
from pixelcnn_np.progress import Progress, format_seconds
from pixelcnn_np.sampling import sample_cached
from pixelcnn_np.train import NonFiniteError, evaluate, training_steps

# Test images per forward pass when evaluating (memory grows with it: the forward pass
# keeps its caches; 100 keeps the peak near that of a training step).
EVAL_BATCH = 100

# Settings that fix the data order: a resumed run must use the same ones.
RUN_KEYS = ("batch_size", "seed", "binarize", "schedule")


PRESETS = {
    # The default: the member of the family that learned fastest per second on two cores
    # (README: 0.0776 nats/pixel in 15 minutes against the Gated PixelCNN's 0.0799): the
    # plain stack with dilated 3x3 mask-B layers (dilated.py), trained against the clock with
    # the learning rate decayed to zero by a cosine over the wall-clock budget. It keeps the
    # plain stack's blind spot; `--model gated` is the model without one.
    "default": {"model": "dilated", "arch": {"hidden": 64, "first_kernel_size": 7, "kernel_size": 3,
                                             "dilations": [1, 2, 4, 8, 1, 2]},
                "lr": 3e-3, "batch_size": 64, "minutes": 15.0, "epochs": None, "schedule": "cosine"},
    # The seed recipe of the design documents, exactly: 7x7 A + 6 x 7x7 B, 64 channels,
    # Adam 1e-3, batch 64, 10 epochs, constant learning rate.
    "seed": {"model": "pixelcnn", "arch": {"hidden": 64, "n_layers": 6, "kernel_size": 7},
             "lr": 1e-3, "batch_size": 64, "minutes": None, "epochs": 10, "schedule": "constant"},
}


def dilation_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return text


def build_parser():
    p = OneLineParser(
        description="Train a hand-written NumPy PixelCNN on MNIST (CPU). Without flags: the default "
                    "preset, a dilated PixelCNN trained for 15 minutes.",
        epilog="Flags left unset take their value from --preset (shown in braces).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="default: dilated, 7x7 A then 3x3 B, 64 ch, dilations 1,2,4,8,1,2, Adam 3e-3 cosine over 15 min; "
                        "seed: the seed PixelCNN recipe (7x7, 64 ch, 6 B layers, Adam 1e-3, 10 epochs)")
    g = p.add_argument_group("training")
    g.add_argument("--minutes", type=positive_float, default=None,
                   help="wall-clock budget in minutes, including the final evaluation and samples {default: 15}")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs to train, counting resumed ones; without --minutes, no time budget {seed: 10}")
    g.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many optimizer steps in total")
    g.add_argument("--batch-size", type=positive_int, default=None, help="{64}")
    g.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate {default: 3e-3, seed: 1e-3}")
    g.add_argument("--schedule", choices=("cosine", "constant"), default=None,
                   help="cosine: decay the rate to 0 over the time budget (or over all epochs) {default: cosine, seed: constant}")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed for init, data order and sampling (default 0)")
    g.add_argument("--binarize", choices=("threshold", "dynamic"), default="threshold",
                   help="threshold: pixel/255 >= 0.5 (default); dynamic: Bernoulli(pixel/255) resampled every batch")
    g.add_argument("--test-protocol", choices=("threshold", "stochastic"), default=None,
                   help="how binary test digits are made: threshold (pixel >= 128), or stochastic, one "
                        "fixed-seed Bernoulli(pixel/255) draw as in the papers (data.binarize_test_set) "
                        "{threshold with --binarize threshold, stochastic with --binarize dynamic}")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="pixelcnn (plain, blind spot), gated (two stacks, no blind spot), residual (residual "
                        "blocks), dilated (plain with dilated convs), attention (masked convs with causal "
                        "self-attention blocks) {default: dilated, seed: pixelcnn}")
    g.add_argument("--conditional", action="store_true",
                   help="class-conditional: learn p(image | digit label), a learned per-channel bias per label "
                        "in every layer (every model); sample a digit with sample.py --digits")
    g.add_argument("--pixels", choices=("binary", "8bit"), default="binary",
                   help="binary: sigmoid head on binarized MNIST (default); 8bit: 256-way softmax on raw pixels")
    g.add_argument("--hidden", type=positive_int, default=None, help="channels of every hidden layer {default: 64, seed: 64}")
    g.add_argument("--layers", type=non_negative_int, default=None,
                   help="pixelcnn, attention: mask-B layers after the mask-A layer {seed: 6}; residual: residual blocks")
    g.add_argument("--dilations", type=dilation_list, default=None,
                   help="gated, dilated: one layer per comma-separated dilation {default: 1,2,4,8,1,2}")
    g.add_argument("--kernel-size", type=odd_int, default=None, help="kernel size of the masked layers {default: 3, seed: 7}")
    g.add_argument("--attention-every", type=non_negative_int, default=None,
                   help="attention: a self-attention block after every N-th mask-B layer (0: none) {4}")
    g.add_argument("--key-channels", type=positive_int, default=None,
                   help="attention: channels of the queries, keys and values {8}")
    g = p.add_argument_group("input/output")
    g.add_argument("--data-dir", default=None,
                   help=f"folder with the four MNIST files (default: ${DATA_DIR_ENV}, else ./data, downloading if missing)")
    g.add_argument("--no-download", action="store_true", help="fail instead of downloading missing MNIST files")
    g.add_argument("--out", default="runs/mnist", help="output folder (default runs/mnist)")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz (with a larger --minutes or --epochs, a finished run "
                        "trains on)")
    g.add_argument("--save-every", type=positive_int, default=100, help="checkpoint every N steps and every epoch (default 100)")
    g.add_argument("--eval-limit", type=positive_int, default=None,
                   help="evaluate on the first N test images only (with --minutes, epoch-end evaluations use "
                        "2000 images unless this is set; the final one always uses all of them or N)")
    g.add_argument("--n-samples", type=non_negative_int, default=16, help="digits to sample at the end (0: none; default 16)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return p


def resolve(args):
    """Fill the unset flags from the preset; return (config, run settings).

    Architecture flags left unset come from the preset when --model is the preset's
    model, and from the model's own defaults (models.make_config) otherwise."""
    preset = PRESETS[args.preset]
    user_epochs, user_minutes = args.epochs is not None, args.minutes is not None
    for key in ("minutes", "epochs", "batch_size", "lr", "schedule"):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key))
    if user_epochs and not user_minutes:
        args.minutes = None                   # --epochs alone: train exactly that many epochs
    if args.epochs is None:
        args.epochs = 1000                    # a time budget alone: epochs are only an upper bound
    model = args.model or preset["model"]
    arch = dict(preset["arch"]) if model == preset["model"] else {}
    given = {"hidden": args.hidden, "kernel_size": args.kernel_size, "pixels": args.pixels,
             "n_classes": 10 if args.conditional else None}
    if model in ("pixelcnn", "attention"):
        given["n_layers"] = args.layers
    elif model == "residual":
        given["n_blocks"] = args.layers
    elif args.layers is not None:
        raise ValueError(f"--layers does not apply to --model {model} (use --dilations: one layer per entry)")
    if args.dilations:
        if model not in ("gated", "dilated"):
            raise ValueError(f"--dilations does not apply to --model {model}")
        given["dilations"] = [int(v) for v in args.dilations.split(",")]
    for flag, key in (("attention_every", "attention_every"), ("key_channels", "key_channels")):
        if getattr(args, flag) is not None:
            if model != "attention":
                raise ValueError(f"--{flag.replace('_', '-')} applies to --model attention only")
            given[key] = getattr(args, flag)
    arch.update({k: v for k, v in given.items() if v is not None})
    config = make_config(model, **arch)
    if args.test_protocol is None:
        args.test_protocol = "stochastic" if args.binarize == "dynamic" else "threshold"
    run = {"batch_size": args.batch_size, "seed": args.seed, "binarize": args.binarize, "lr": args.lr,
           "schedule": args.schedule, "minutes": args.minutes, "epochs": args.epochs,
           "test_protocol": args.test_protocol}
    return config, run


def atomic_write_text(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def cosine_rate(lr, frac):
    """Cosine decay from lr at frac = 0 to 0 at frac = 1."""
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, frac))))


def time_forward(params, config, n):
    """Seconds for one forward pass on n images (second of two calls: the first one
    pays for loading compiled kernels and first-touch memory)."""
    model = get_model(config)
    x = np.zeros((n, 1, config["height"], config["width"]), dtype=np.float32)
    labels = np.zeros(n, dtype=np.int64) if config.get("n_classes", 0) else None
    model.forward(params, x, config, labels=labels)
    t0 = time.perf_counter()
    model.forward(params, x, config, labels=labels)
    return time.perf_counter() - t0


def time_sampling(params, config, n):
    """Seconds the cached sampler takes for n images (timed on 2 rows, scaled)."""
    H, W = config["height"], config["width"]
    t0 = time.perf_counter()
    labels = np.zeros(n, dtype=np.int64) if config.get("n_classes", 0) else None
    sample_cached(params, config, n, np.random.default_rng(0), images=np.zeros((n, H, W), np.uint8),
                  start=(H - 2) * W, labels=labels)
    return (time.perf_counter() - t0) * H / 2


def budget_text(run):
    """'15 minutes' or '10 epochs': the budget of a run's settings."""
    return f"{run['minutes']:g} minutes" if run.get("minutes") else f"{run.get('epochs')} epochs"


def starting_state(args, config, run, ckpt_path, log=print):
    """(params, opt_state, start_epoch, start_batch, history, elapsed seconds): fresh
    from the seed, or with --resume from ckpt_path after checking that its config, data
    settings and parameter shapes match (CheckpointError otherwise)."""
    model = get_model(config)
    if not args.resume:
        params = model.init_params(config, np.random.default_rng(args.seed))
        return params, adam_init(params), 0, 0, {"step_loss": [], "epochs": []}, 0.0
    saved = ckpt.load_checkpoint(ckpt_path)
    ckpt.check_config_compatible(saved.config, config)
    # (a checkpoint from before a setting existed is compared on the settings it has)
    ckpt.check_config_compatible(saved.meta["run"], run, keys=[k for k in RUN_KEYS if k in saved.meta["run"]])
    ckpt.check_params_match(saved.params, model.param_shapes(config))
    meta = saved.meta
    log(f"resuming {ckpt_path}: step {saved.opt_state['t']}, epoch {meta['epoch'] + 1}, batch {meta['batch']}, "
        f"{format_seconds(meta.get('elapsed', 0.0))} already spent")
    old_budget, new_budget = budget_text(meta["run"]), budget_text(run)
    if old_budget != new_budget and ("minutes" in meta["run"] or "epochs" in meta["run"]):
        # A finished run can be extended: the budget is not one of RUN_KEYS.
        log(f"budget changed from {old_budget} to {new_budget}: training goes on to the new one"
            + (", its cosine decay stretched over it (the rate rises back to its value at the time "
               "already spent)" if run["schedule"] == "cosine" else ""))
    return saved.params, saved.opt_state, meta["epoch"], meta["batch"], meta["history"], meta.get("elapsed", 0.0)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    ckpt_path = out / "checkpoint.npz"
    if args.resume and not ckpt_path.exists():
        parser.error(f"--resume: no checkpoint at {ckpt_path} (start without --resume, or set --out)")
    try:
        config, run = resolve(args)
    except ValueError as e:
        parser.error(str(e))
    D = config["height"] * config["width"]

    try:
        data = load_mnist(args.data_dir, download=not args.no_download)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    train_images, test_images = data["train_images"], data["test_images"]
    conditional = config.get("n_classes", 0) > 0
    train_labels = data["train_labels"] if conditional else None
    test_labels = data["test_labels"] if conditional else None          # None: p(x), else p(x | y)
    if args.eval_limit:
        test_images = test_images[:args.eval_limit]
        test_labels = None if test_labels is None else test_labels[:args.eval_limit]
    # With a time budget, epoch-end evaluations use a subset; the final one uses test_images.
    subset = slice(None) if (args.minutes is None or args.eval_limit) else slice(0, 2000)
    epoch_test = (test_images[subset], None if test_labels is None else test_labels[subset])

    try:
        params, opt_state, start_epoch, start_batch, history, elapsed0 = starting_state(args, config, run, ckpt_path)
    except ckpt.CheckpointError as e:
        print(f"error: cannot resume: {e}", file=sys.stderr)
        return 2
    n_params = sum(p.size for p in params.values())
    per_epoch = -(-len(train_images) // args.batch_size)
    budget = budget_text(run)
    # Ctrl-C / SIGTERM only raise a flag, read after each step: an exception thrown into the
    # middle of a step can land inside Numba's machinery (loading a cached kernel, say), which
    # turns it into a SystemError instead of a clean stop. A second signal stops at once
    # (the last finished step is saved either way: `state` only ever holds whole steps).
    # From here on (the line below tells the user training has begun), an interrupt always
    # leaves a checkpoint: one that comes before the first step stops after that step.
    signals = []

    def on_signal(signum, frame):
        signals.append(signum)
        if len(signals) > 1:
            raise KeyboardInterrupt
    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"model {config['model']} ({n_params:,} parameters), {budget}, batch {args.batch_size}, "
          f"lr {args.lr:g} ({args.schedule}); {len(train_images)} training images; writing to {out}")

    t_start = time.perf_counter()

    def elapsed():
        return elapsed0 + time.perf_counter() - t_start

    # The training budget: the wall-clock budget minus what the final evaluation and
    # sampling are expected to take (timed on this machine, now).
    train_seconds = None
    if args.minutes:
        t_eval = time_forward(params, config, EVAL_BATCH) * len(test_images) / EVAL_BATCH
        t_samples = time_sampling(params, config, args.n_samples) if args.n_samples else 0.0
        # elapsed() already counts the start-up and any time spent before a --resume
        train_seconds = args.minutes * 60 - 1.1 * (t_eval + t_samples) - 10
        print(f"time budget: {train_seconds / 60:.1f} min of training, then about {t_eval:.0f} s of "
              f"evaluation and {t_samples:.0f} s of sampling")
        if train_seconds <= 0:
            parser.error(f"--minutes {args.minutes:g} leaves no time to train (evaluation and sampling "
                         f"alone take about {t_eval + t_samples:.0f} s)")
    total_steps = args.epochs * per_epoch

    def learning_rate(step):
        if args.schedule == "constant":
            return args.lr
        frac = elapsed() / train_seconds if train_seconds else step / total_steps
        return cosine_rate(args.lr, frac)

    state = {"params": params, "opt": opt_state, "epoch": start_epoch, "batch": start_batch}

    def save():
        meta = {"epoch": state["epoch"], "batch": state["batch"], "run": run, "history": history,
                "elapsed": elapsed()}
        ckpt.save_checkpoint(ckpt_path, state["params"], config, state["opt"], meta)


    out.mkdir(parents=True, exist_ok=True)
    bar = None
    try:
        steps = training_steps(params, opt_state, train_images, config, epochs=args.epochs,
                               batch_size=args.batch_size, lr=learning_rate, seed=args.seed,
                               binarization=args.binarize, start_epoch=start_epoch, start_batch=start_batch,
                               train_labels=train_labels)
        for s in steps:
            if bar is None:
                label = f"epoch {s.epoch + 1}" + ("" if args.minutes else f"/{args.epochs}")
                bar = Progress(per_epoch, label, enabled=not args.no_progress)
            state.update(params=s.params, opt=s.opt_state, epoch=s.epoch, batch=s.batch)
            history["step_loss"].append((s.step, s.loss))
            bar.update(s.batch, loss=s.loss)
            end_of_epoch = s.batch == s.batches_per_epoch
            stop = ((args.max_steps is not None and s.step >= args.max_steps)
                    or (train_seconds is not None and elapsed() >= train_seconds)
                    or (end_of_epoch and s.epoch + 1 == args.epochs))      # the final evaluation follows
            if end_of_epoch:
                bar.close()
                bar = None
                state.update(epoch=s.epoch + 1, batch=0)
                if not stop:
                    record_epoch(history, s, s.params, config, epoch_test, elapsed(), args.no_progress,
                                 run["test_protocol"])
                save()
                atomic_write_text(out / "metrics.json", json.dumps(metrics_doc(config, run, history), indent=1))
            elif s.step % args.save_every == 0 or stop:
                save()
            if signals:
                raise KeyboardInterrupt
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
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if bar is not None:
        bar.close()

    # Final evaluation on every test image (or --eval-limit of them).
    params = state["params"]
    ebar = Progress(len(test_images), "test", enabled=not args.no_progress)
    test = evaluate(params, config, test_images, batch_size=EVAL_BATCH, progress=lambda d, t: ebar.update(d),
                    labels=test_labels, protocol=run["test_protocol"])
    ebar.close()
    step = state["opt"]["t"]
    recent = [v for st, v in history["step_loss"] if st > step - per_epoch]
    final = {"epoch": round(state["epoch"] + state["batch"] / per_epoch, 3), "step": step,
             "train": float(np.mean(recent)) if recent else float("nan"), "test": test,
             "seconds": elapsed(), "final": True, "test_images": len(test_images)}
    history["epochs"] = [e for e in history["epochs"] if e["step"] != step] + [final]
    save()
    atomic_write_text(out / "metrics.json", json.dumps(metrics_doc(config, run, history), indent=1))
    save_figure(loss_curve_figure(history), out / "loss_curve.png")
    if args.n_samples:
        sbar = Progress(D, f"sampling {args.n_samples}", enabled=not args.no_progress)
        digits = np.arange(args.n_samples) % 10 if conditional else None        # conditional: 0, 1, ..., 9, 0, ...
        imgs = sample_cached(params, config, args.n_samples, np.random.default_rng(args.seed),
                             progress=lambda d, t: sbar.update(d), labels=digits)
        sbar.close()
        what = "digits 0-9 in turn" if conditional else "raster scan, cached"
        save_figure(samples_figure(imgs, f"{args.n_samples} samples ({what})",
                                   vmax=1 if config["pixels"] == "binary" else 255), out / "samples.png")
    print_table(history, D)
    print(f"done: {step} steps, {format_seconds(elapsed())} wall time; "
          f"test {format_report(nll_report(test, D))}")
    return 0


def print_table(history, D):
    print(f"{'epoch':>7s} {'step':>6s} {'time':>8s} {'train nats/px':>13s} {'test nats/px':>12s} "
          f"{'test bits/dim':>13s} {'test nats/img':>13s}")
    for e in history["epochs"]:
        r = nll_report(e["test"], D)
        print(f"{e['epoch']:7.3g} {e['step']:6d} {format_seconds(e['seconds']):>8s} {e['train']:13.4f} "
              f"{r['nats_per_pixel']:12.4f} {r['bits_per_dim']:13.4f} {r['nats_per_image']:13.2f}")


def record_epoch(history, s, params, config, test, epoch_seconds, no_progress, protocol="threshold"):
    """Evaluate on test = (images, labels or None) at the end of an epoch, under the
    test `protocol`, print the row, append it to the history."""
    test_images, test_labels = test
    ebar = Progress(len(test_images), "  test", enabled=not no_progress)
    test = evaluate(params, config, test_images, batch_size=EVAL_BATCH, progress=lambda d, t: ebar.update(d),
                    labels=test_labels, protocol=protocol)
    ebar.close()
    append_epoch(history, s, test, len(test_images), epoch_seconds, config)


def append_epoch(history, s, test, n_test, epoch_seconds, config):
    """Append the row of the epoch that step `s` ended (test NLL `test` measured on n_test
    images) to the history, and print it."""
    first = s.step - s.batches_per_epoch
    train = float(np.mean([v for st, v in history["step_loss"] if st > first]))
    history["epochs"].append({"epoch": s.epoch + 1, "step": s.step, "train": train, "test": test,
                              "seconds": epoch_seconds})
    D = config["height"] * config["width"]
    history["epochs"][-1]["test_images"] = n_test
    print(f"epoch {s.epoch + 1}: train {format_report(nll_report(train, D))}")
    print(f"epoch {s.epoch + 1}: test  {format_report(nll_report(test, D))} "
          f"({n_test} images) [{format_seconds(epoch_seconds)} elapsed]")


def metrics_doc(config, run, history):
    D = config["height"] * config["width"]
    rows = [dict(e, **{f"test_{k}": v for k, v in nll_report(e["test"], D).items()}) for e in history["epochs"]]
    protocol = run.get("test_protocol", "threshold") if config["pixels"] == "binary" else "8-bit pixels"
    return {"config": config, "run": run, "test_protocol": protocol, "epochs": rows}


if __name__ == "__main__":
    sys.exit(main())
