"""A training run: budget, schedule, checkpoints, resume, Ctrl-C, the final evaluation.

train.training_steps is the loop a reader follows (batch -> forward -> loss -> backward
-> Adam). Everything a real run adds around it lives here, once, for both scripts:
train_mnist.py hands `train` a NumpyEngine, train_torch.py a torch_engine.TorchEngine,
and nothing else differs.

    start = starting_state(config, run, out / "checkpoint.npz", resume, seed)
    engine = NumpyEngine(config, start.params, start.opt_state)
    status = train(engine, config, run, start, (train_images, train_labels),
                   (test_images, test_labels), out)           # 0, 1 or 130

(`train_from_flags` is these three lines, for the scripts' flags.)

What `train` does (config from models.make_config, run from presets.resolve):

  budget    run["minutes"]: the wall clock, less what the final evaluation and the samples
            are expected to take (timed on this machine, now); else run["max_steps"]
            steps, else run["epochs"] epochs.
  schedule  "constant": run["lr"]; "cosine": lr (1 + cos(pi f)) / 2, f the fraction of
            the budget spent: wall time when it is in minutes, else steps. A resumed run
            goes on from the fraction already spent.
  the loop  one engine step at a time; every step's loss into the history; a checkpoint
            every `save_every` steps and at each epoch end, with a test evaluation
            (2000 images under a time or step budget) and metrics.json.
  the end   the test NLL on every test image (or `eval_limit`), the final row,
            metrics.json, loss_curve.png, samples.png, the per-epoch table.
  signals   Ctrl-C and SIGTERM only raise a flag (`Signals`): the step in progress
            finishes and is saved; during the final evaluation and sampling the flag
            stops the run at the next batch or pixel. Either way one line, exit 130.

A checkpoint's meta is what a resume reads back (checkpoint.check_resumable):
{"epoch", "batch"} (where to go on), "run", "history" (history.py) and "elapsed"
(seconds spent, so the clock and a cosine over wall time go on where they stopped).

An engine is what `train` needs from a framework: rank, world (processes: 1 here),
description (for the first line), steps_in_place (Adam updates weights in place: a
step must never be cut short), steps(...) -> train.Step iterator, test_nll(images,
labels, protocol, progress) -> nats/pixel, weights() -> (params, opt_state) as NumPy
arrays, forward_seconds(n), agreed(value) (rank 0's value on every rank) and
anyone(flag) (the flag is up on some rank).
"""

import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .adam import adam_init
from .cli import fail, split
from .conditioning import n_classes
from .history import append_epoch, append_final, new_history, print_table, write_metrics
from .metrics import format_report, nll_report
from .models import dims_per_image, get_model, image_shape
from .plots import loss_curve_figure, samples_figure, save_figure
from .progress import Progress, format_seconds
from .sampling import sample_cached
from .train import NonFiniteError, evaluate, training_steps

# Test images per forward pass when evaluating (memory grows with it: the forward pass
# keeps its caches; 100 keeps the peak near that of a training step).
EVAL_BATCH = 100

# Settings that fix the data order: a resumed run must use the same ones.
RUN_KEYS = ("batch_size", "seed", "binarize", "schedule", "dataset")


class UsageError(ValueError):
    """The run cannot go as asked (the scripts turn it into a one-line usage error)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, acted on where the run's state is whole."""


# ----------------------------------------------------------------------------------
# Budget and schedule
# ----------------------------------------------------------------------------------

def cosine_rate(lr, frac):
    """Cosine decay from lr at frac = 0 to 0 at frac = 1."""
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, frac))))


def budget_text(run):
    """'15 minutes', '50 steps' or '10 epochs': the budget of a run's settings."""
    if run.get("minutes"):
        return f"{run['minutes']:g} minutes"
    if run.get("max_steps"):
        return f"{run['max_steps']} steps"
    return f"{run.get('epochs')} epochs"


def time_forward(params, config, n):
    """Seconds for one forward pass on n images (second of two calls: the first one
    pays for loading compiled kernels and first-touch memory)."""
    model = get_model(config)
    x = np.zeros((n, config.get("channels", 1), config["height"], config["width"]), dtype=np.float32)
    labels = np.zeros(n, dtype=np.int64) if n_classes(config) else None
    model.forward(params, x, config, labels=labels)
    t0 = time.perf_counter()
    model.forward(params, x, config, labels=labels)
    return time.perf_counter() - t0


def time_sampling(params, config, n):
    """Seconds the cached sampler takes for n images (timed on 2 rows, scaled)."""
    H, W = config["height"], config["width"]
    t0 = time.perf_counter()
    labels = np.zeros(n, dtype=np.int64) if n_classes(config) else None
    sample_cached(params, config, n, np.random.default_rng(0), images=np.zeros((n,) + image_shape(config), np.uint8),
                  start=(H - 2) * W, labels=labels)
    return (time.perf_counter() - t0) * H / 2


def training_seconds(engine, config, run, params, n_test, n_samples, log=print):
    """Seconds of training a time budget leaves (None without one): run["minutes"] less
    the final evaluation of n_test images (shared by the ranks) and n_samples samples
    (rank 0, in NumPy), as long as they take on this machine now, with 10% and 10 s to
    spare. The run's clock already counts the start-up and the time before a --resume."""
    if not run["minutes"]:
        return None
    t_eval = engine.forward_seconds(EVAL_BATCH) * n_test / EVAL_BATCH / engine.world
    t_samples = time_sampling(params, config, n_samples) if n_samples and engine.rank == 0 else 0.0
    seconds = engine.agreed(run["minutes"] * 60 - 1.1 * (t_eval + t_samples) - 10)
    log(f"time budget: {seconds / 60:.1f} min of training, then about {t_eval:.0f} s of "
        f"evaluation and {t_samples:.0f} s of sampling")
    if seconds <= 0:
        raise UsageError(f"--minutes {run['minutes']:g} leaves no time to train (evaluation and sampling "
                         f"alone take about {t_eval + t_samples:.0f} s)")
    return seconds


def schedule(run, train_seconds, total_steps, elapsed):
    """step -> learning rate: constant, or a cosine over the budget, wall time
    (elapsed() of train_seconds) or steps (of total_steps)."""
    lr = run["lr"]
    if run["schedule"] == "constant":
        return lambda step: lr
    if train_seconds:
        return lambda step: cosine_rate(lr, elapsed() / train_seconds)
    return lambda step: cosine_rate(lr, step / total_steps)


# ----------------------------------------------------------------------------------
# Starting: fresh, or from a checkpoint
# ----------------------------------------------------------------------------------

@dataclass
class Start:
    """Where a run starts: weights and Adam state, the (epoch, batch) to go on at, the
    history so far and the seconds already spent (all 0 and empty for a fresh run)."""
    params: dict
    opt_state: dict
    epoch: int
    batch: int
    history: dict
    elapsed: float


def starting_state(config, run, ckpt_path, resume, seed, log=print):
    """A fresh Start from `seed`, or with `resume` the one of `ckpt_path` after checking
    that its config, data settings and parameter shapes match (CheckpointError otherwise).
    A changed budget is not an error: a finished run trains on to the new one."""
    model = get_model(config)
    if not resume:
        params = model.init_params(config, np.random.default_rng(seed))
        return Start(params, adam_init(params), 0, 0, new_history(), 0.0)
    saved = ckpt.load_checkpoint(ckpt_path, for_resume=True)
    meta = saved.meta
    ckpt.check_config_compatible(saved.config, config)
    # (a checkpoint from before a setting existed is compared on the settings it has)
    ckpt.check_config_compatible(meta["run"], run, keys=[k for k in RUN_KEYS if k in meta["run"]])
    ckpt.check_params_match(saved.params, model.param_shapes(config))
    log(f"resuming {ckpt_path}: step {saved.opt_state['t']}, epoch {meta['epoch'] + 1}, batch {meta['batch']}, "
        f"{format_seconds(meta.get('elapsed', 0.0))} already spent")
    old_budget, new_budget = budget_text(meta["run"]), budget_text(run)
    if old_budget != new_budget and ("minutes" in meta["run"] or "epochs" in meta["run"]):
        log(f"budget changed from {old_budget} to {new_budget}: training goes on to the new one"
            + (", its cosine decay stretched over it (the rate rises back to its value at the time "
               "already spent)" if run["schedule"] == "cosine" else ""))
    return Start(saved.params, saved.opt_state, meta["epoch"], meta["batch"], meta["history"],
                 meta.get("elapsed", 0.0))


# ----------------------------------------------------------------------------------
# The engine of train_mnist.py, and signals
# ----------------------------------------------------------------------------------

class NumpyEngine:
    """pixelcnn_np's own forward, backward and Adam (train.training_steps), one process.
    It keeps the weights of the last finished step: an interrupt never sees half a step."""
    rank, world, description, steps_in_place = 0, 1, "", False

    def __init__(self, config, params, opt_state):
        self.config, self.params, self.opt_state = config, params, opt_state

    def steps(self, train_images, train_labels, **settings):
        for s in training_steps(self.params, self.opt_state, train_images, self.config,
                                train_labels=train_labels, **settings):
            self.params, self.opt_state = s.params, s.opt_state
            yield s

    def test_nll(self, images, labels, protocol, progress=None):
        return evaluate(self.params, self.config, images, batch_size=EVAL_BATCH, progress=progress,
                        labels=labels, protocol=protocol)

    def weights(self):
        return self.params, self.opt_state

    def forward_seconds(self, n):
        return time_forward(self.params, self.config, n)

    def agreed(self, value):
        return value

    def anyone(self, flag):
        return bool(flag)


class Signals:
    """While active, Ctrl-C (SIGINT) and SIGTERM only raise a flag: the run reads it
    after each step (`raised`) and in progress callbacks (`check`). An exception thrown
    into the middle of a step can land inside Numba's machinery (loading a cached kernel,
    say), which turns it into a SystemError instead of a clean stop. A second signal
    stops at once (KeyboardInterrupt), unless at_once=False: an engine whose Adam
    updates the weights in place must never stop mid-step."""

    def __init__(self, at_once=True):
        self.received, self.at_once, self._previous = [], at_once, {}

    @property
    def raised(self):
        return bool(self.received)

    def check(self):
        if self.received:
            raise Interrupted

    def _on_signal(self, signum, frame):
        self.received.append(signum)
        if self.at_once and len(self.received) > 1:
            raise KeyboardInterrupt

    def __enter__(self):
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------

def train_from_flags(args, config, run, data, make_engine, log=print):
    """What train_mnist.py and train_torch.py do once their flags are read
    (presets.parse_training_flags): start, or resume from args.out, hand the start to
    make_engine(config, params, opt_state) and `train` on `data` (load_mnist's dict);
    the exit status. A checkpoint --resume cannot use ends the script in one line (exit 2)."""
    out = Path(args.out)
    try:
        start = starting_state(config, run, out / "checkpoint.npz", args.resume, args.seed, log)
    except ckpt.CheckpointError as e:
        fail(f"cannot resume: {e}", 2)
    engine = make_engine(config, start.params, start.opt_state)
    return train(engine, config, run, start, split(data, "train", config), split(data, "test", config), out,
                 max_steps=args.max_steps, save_every=args.save_every, eval_limit=args.eval_limit,
                 n_samples=args.n_samples, progress=not args.no_progress)


def _first(arrays, n):
    """The first n rows (None: all) of each array of a tuple; None stays None."""
    return tuple(None if a is None else a[:n] for a in arrays)


def train(engine, config, run, start, train_set, test_set, out, *, max_steps=None, save_every=100,
          eval_limit=None, n_samples=16, progress=True):
    """Train from `start` with `engine` within the run's budget; write checkpoint.npz,
    metrics.json, loss_curve.png and samples.png to `out`. train_set and test_set are
    (images (N, H, W) uint8, labels (N,) or None: labels for a class-conditional config).
    max_steps stops the run after that many steps in all (whatever the budget).

    Returns the exit status: 0 done, 1 a non-finite loss (the last good checkpoint is
    kept), 130 interrupted (what was done is saved). Raises UsageError when a time
    budget leaves no time to train."""
    out, main = Path(out), engine.rank == 0
    ckpt_path = out / "checkpoint.npz"
    log = print if main else (lambda *a, **k: None)
    D = dims_per_image(config)
    train_images, train_labels = train_set
    test = _first(test_set, eval_limit)
    by_epochs = run["minutes"] is None and run.get("max_steps") is None
    epoch_test = test if by_epochs or eval_limit else _first(test, 2000)
    per_epoch = -(-len(train_images) // run["batch_size"])
    history = start.history
    state = {"epoch": start.epoch, "batch": start.batch, "step": start.opt_state["t"]}
    t_start = time.perf_counter()

    def elapsed():
        return start.elapsed + time.perf_counter() - t_start

    def save():                                  # rank 0 writes; the others hold the same weights
        if main:
            params, opt_state = engine.weights()
            meta = {"epoch": state["epoch"], "batch": state["batch"], "run": run, "history": history,
                    "elapsed": elapsed()}
            ckpt.save_checkpoint(ckpt_path, params, config, opt_state, meta)

    # From here on (the first line tells the user training has begun), an interrupt always
    # leaves a checkpoint: one that comes before the first step stops after that step.
    with Signals(at_once=not engine.steps_in_place) as signals:
        n_params = sum(p.size for p in start.params.values())
        log(f"model {config['model']} ({n_params:,} parameters), {budget_text(run)}, batch {run['batch_size']}, "
            f"lr {run['lr']:g} ({run['schedule']}); {len(train_images)} training images; "
            + (f"{engine.description}; " if engine.description else "") + f"writing to {out}")
        train_seconds = training_seconds(engine, config, run, start.params, len(test[0]), n_samples, log)
        total_steps = run.get("max_steps") or run["epochs"] * per_epoch
        lr = schedule(run, train_seconds, total_steps, lambda: engine.agreed(elapsed()))
        if main:
            out.mkdir(parents=True, exist_ok=True)
        bar = None
        try:
            for s in engine.steps(train_images, train_labels, epochs=run["epochs"], batch_size=run["batch_size"],
                                  lr=lr, seed=run["seed"], binarization=run["binarize"],
                                  start_epoch=start.epoch, start_batch=start.batch):
                if bar is None:
                    label = f"epoch {s.epoch + 1}" + (f"/{run['epochs']}" if by_epochs else "")
                    bar = Progress(per_epoch, label, enabled=progress and main)
                state.update(epoch=s.epoch, batch=s.batch, step=s.step)
                history["step_loss"].append((s.step, s.loss))
                bar.update(s.batch, loss=s.loss)
                end_of_epoch = s.batch == s.batches_per_epoch
                stop = ((max_steps is not None and s.step >= max_steps)
                        or (train_seconds is not None and engine.agreed(elapsed()) >= train_seconds)
                        or (end_of_epoch and s.epoch + 1 == run["epochs"]))      # the final evaluation follows
                if end_of_epoch:
                    bar.close()
                    bar = None
                    state.update(epoch=s.epoch + 1, batch=0)
                    if not stop:
                        nll = scored(engine, epoch_test, run["test_protocol"], "  test", progress and main)
                        if main:
                            append_epoch(history, s, nll, len(epoch_test[0]), elapsed(), config)
                    save()
                    if main:
                        write_metrics(out / "metrics.json", config, run, history)
                elif s.step % save_every == 0 or stop:
                    save()
                if engine.anyone(signals.raised):
                    raise Interrupted
                if stop:
                    break
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            save()
            if main:
                print(f"interrupted: saved {ckpt_path} at step {state['step']}; continue with --resume",
                      file=sys.stderr)
            return 130
        except NonFiniteError as e:
            if bar is not None:
                bar.close()
            if main:
                print(f"error: {e}. Stopped; the last good checkpoint is {ckpt_path}. Try a smaller --lr.",
                      file=sys.stderr)
            return 1
        if bar is not None:
            bar.close()

        # The final evaluation on every test image (or eval_limit of them), shared by the ranks;
        # from here a signal stops at the next image batch or sampled pixel.
        try:
            nll = scored(engine, test, run["test_protocol"], "test", progress and main, signals.check)
        except KeyboardInterrupt:
            if main:
                print(f"interrupted during the final evaluation: saved {ckpt_path} at step {state['step']}; "
                      f"continue with --resume", file=sys.stderr)
            return 130
        if not main:
            return 0
        append_final(history, state["epoch"], state["batch"], per_epoch, state["step"], nll, len(test[0]),
                     elapsed())
        save()
        write_metrics(out / "metrics.json", config, run, history)
        save_figure(loss_curve_figure(history), out / "loss_curve.png")
        if n_samples:
            try:
                draw_samples(engine.weights()[0], config, n_samples, run["seed"], out / "samples.png",
                             progress, signals.check)
            except KeyboardInterrupt:
                print(f"interrupted while sampling: {ckpt_path} and metrics.json are saved at step "
                      f"{state['step']}, {out / 'samples.png'} is not (draw samples with examples/sample.py "
                      f"--checkpoint {ckpt_path})", file=sys.stderr)
                return 130
    print_table(history, D)
    print(f"done: {state['step']} steps, {format_seconds(elapsed())} wall time; "
          f"test {format_report(nll_report(nll, D), 'dim' if config.get('channels', 1) > 1 else 'pixel')}")
    return 0


def _bar(total, label, enabled, check):
    """A Progress bar and its callback (done, total) -> None, which first calls check()."""
    bar = Progress(total, label, enabled=enabled)

    def update(done, total):
        if check is not None:
            check()
        bar.update(done)
    return bar, update


def scored(engine, test, protocol, label, progress=True, check=None):
    """engine.test_nll of test = (images, labels or None) under the test `protocol`, with
    a progress bar; check() is called after every batch (it may raise to stop)."""
    bar, update = _bar(len(test[0]), label, progress, check)
    try:
        return engine.test_nll(*test, protocol, update)
    finally:
        bar.close()


def draw_samples(params, config, n, seed, path, progress=True, check=None):
    """n cached samples (digits 0, 1, ..., 9, 0, ... for a class-conditional model) as a
    grid at `path`; check() is called at every pixel (it may raise to stop)."""
    bar, update = _bar(config["height"] * config["width"], f"sampling {n}", progress, check)
    k = n_classes(config)
    digits = np.arange(n) % k if k else None
    try:
        images = sample_cached(params, config, n, np.random.default_rng(seed), progress=update, labels=digits)
    finally:
        bar.close()
    what = "digits 0-9 in turn" if k else "raster scan, cached"
    save_figure(samples_figure(images, f"{n} samples ({what})", vmax=1 if config["pixels"] == "binary" else 255),
                path)
