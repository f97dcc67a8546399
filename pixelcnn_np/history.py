"""What a training run records: every step's loss, one row per epoch, metrics.json, the table.

    history = {"step_loss": [[step, loss], ...],               # nats/pixel, every step
               "epochs": [{"epoch", "step", "train", "test", "seconds", "test_images"}, ...]}

It lives in the checkpoint's meta (a resume goes on appending to it) and, with the
test NLL also in bits/dim and nats/image, in metrics.json. The last row of a finished
run has "final": True and a fractional "epoch" (a budget ends mid-epoch).
"""

import json

import numpy as np

from .cli import atomic_write
from .metrics import format_report, nll_report
from .models import dims_per_image
from .progress import format_seconds


def new_history():
    return {"step_loss": [], "epochs": []}


def mean_train_loss(history, after_step):
    """Mean training loss of the steps after `after_step` (nan if there are none)."""
    recent = [v for st, v in history["step_loss"] if st > after_step]
    return float(np.mean(recent)) if recent else float("nan")


def append_epoch(history, s, test, n_test, seconds, config, log=print):
    """Append the row of the epoch that step `s` (train.Step) ended, with test NLL `test`
    (nats/pixel) measured on n_test images, `seconds` into the run; print it."""
    train = mean_train_loss(history, s.step - s.batches_per_epoch)
    history["epochs"].append({"epoch": s.epoch + 1, "step": s.step, "train": train, "test": test,
                              "seconds": seconds, "test_images": n_test})
    D = dims_per_image(config)
    per = "dim" if config.get("channels", 1) > 1 else "pixel"
    log(f"epoch {s.epoch + 1}: train {format_report(nll_report(train, D), per)}")
    log(f"epoch {s.epoch + 1}: test  {format_report(nll_report(test, D), per)} "
        f"({n_test} images) [{format_seconds(seconds)} elapsed]")


def append_final(history, epoch, batch, per_epoch, step, test, n_test, seconds):
    """The final row: test NLL on every test image (or --eval-limit of them), at the step
    the run stopped; it replaces an epoch-end row of the same step."""
    final = {"epoch": round(epoch + batch / per_epoch, 3), "step": step,
             "train": mean_train_loss(history, step - per_epoch), "test": test,
             "seconds": seconds, "final": True, "test_images": n_test}
    history["epochs"] = [e for e in history["epochs"] if e["step"] != step] + [final]


def metrics_doc(config, run, history):
    """The contents of metrics.json: config, run settings, test protocol, the epoch rows
    with their test NLL in every unit of metrics.nll_report."""
    D = dims_per_image(config)
    rows = [dict(e, **{f"test_{k}": v for k, v in nll_report(e["test"], D).items()}) for e in history["epochs"]]
    protocol = run.get("test_protocol", "threshold") if config["pixels"] == "binary" else "8-bit pixels"
    return {"config": config, "run": run, "test_protocol": protocol, "epochs": rows}


def write_metrics(path, config, run, history):
    atomic_write(path, lambda f: f.write(json.dumps(metrics_doc(config, run, history), indent=1)))


def print_table(history, D, log=print):
    """One line per epoch row: epoch, step, time, train and test NLL (D pixels per image)."""
    log(f"{'epoch':>7s} {'step':>6s} {'time':>8s} {'train nats/px':>13s} {'test nats/px':>12s} "
        f"{'test bits/dim':>13s} {'test nats/img':>13s}")
    for e in history["epochs"]:
        r = nll_report(e["test"], D)
        log(f"{e['epoch']:7.3g} {e['step']:6d} {format_seconds(e['seconds']):>8s} {e['train']:13.4f} "
            f"{r['nats_per_pixel']:12.4f} {r['bits_per_dim']:13.4f} {r['nats_per_image']:13.2f}")
