"""pixelcnn_np/run.py, the run both training scripts share: budget and schedule, resume,
signals, and what a run leaves behind, in process on random images (no MNIST needed)."""

import json
import os
import signal

import numpy as np
import pytest

from pixelcnn_np import cli
from pixelcnn_np import run as run_module
from pixelcnn_np.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pixelcnn_np.presets import resolve, training_parser
from pixelcnn_np.run import (
    NumpyEngine, Signals, budget_text, cosine_rate, schedule, starting_state, train,
)

TINY = ["--model", "gated", "--hidden", "4", "--dilations", "1,1", "--batch-size", "8"]


def images(n, seed):
    """n random 28x28 digits (uint8 0..255) with labels: 5 steps an epoch for n = 40."""
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n // 2, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n // 2, dtype=np.uint8)}


DATA = images(40, 0)


def settings(*flags):
    args = training_parser().parse_args([*TINY, *flags])
    return args, *resolve(args)


def start_run(out, *flags, resume=False, engine=NumpyEngine, **options):
    """Resolve `flags` as train_mnist.py does and train on DATA into `out`; the exit status."""
    args, config, run = settings(*flags)
    start = starting_state(config, run, out / "checkpoint.npz", resume, args.seed)
    options = dict(dict(max_steps=args.max_steps, n_samples=0, progress=False), **options)
    return train(engine(config, start.params, start.opt_state), config, run, start,
                 cli.split(DATA, "train", config), cli.split(DATA, "test", config), out, **options)


# ----------------------------------------------------------------------------------
# Budget and schedule
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, budget, max_steps", [
    ([], "15 minutes", None),                               # the default preset
    (["--max-steps", "50"], "50 steps", 50),                # a quick look: the steps are the budget
    (["--max-steps", "50", "--epochs", "1"], "1 epochs", None),     # --epochs is; --max-steps only stops
    (["--max-steps", "50", "--minutes", "2"], "2 minutes", None),
    (["--preset", "seed", "--max-steps", "50"], "50 steps", 50),
    (["--epochs", "3"], "3 epochs", None),
])
def test_the_budget_is_what_the_flags_say(flags, budget, max_steps):
    _, _, run = settings(*flags)
    assert budget_text(run) == budget
    assert run["max_steps"] == max_steps
    assert set(run) == {"batch_size", "seed", "binarize", "lr", "schedule", "minutes", "epochs", "max_steps",
                        "test_protocol", "dataset"}


def test_a_cosine_over_steps_reaches_zero_at_the_last_step():
    _, _, run = settings("--max-steps", "50")
    lr = schedule(run, None, 50, elapsed=lambda: pytest.fail("a step budget reads no clock"))
    assert lr(0) == run["lr"] and lr(25) == pytest.approx(run["lr"] / 2) and lr(50) == 0.0
    clock = schedule(run, 100.0, 50, elapsed=lambda: 25.0)   # a time budget: the fraction of seconds
    assert clock(0) == clock(49) == pytest.approx(cosine_rate(run["lr"], 0.25))
    constant = schedule(dict(run, schedule="constant"), None, 50, elapsed=None)
    assert constant(0) == constant(49) == run["lr"]


def test_a_step_budget_is_announced_and_spans_the_cosine(tmp_path, capsys):
    rates = []

    class Recording(NumpyEngine):
        def steps(self, train_images, train_labels, **kw):
            lr = kw["lr"]
            for s in super().steps(train_images, train_labels, **kw):
                rates.append(lr(s.step - 1))
                yield s

    assert start_run(tmp_path, "--max-steps", "8", engine=Recording) == 0
    out = capsys.readouterr().out
    assert "8 steps" in out and "minutes" not in out and "time budget" not in out
    assert rates[0] == 3e-3 and rates[4] == pytest.approx(3e-3 / 2)
    assert rates[-1] == pytest.approx(cosine_rate(3e-3, 7 / 8))
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert load_checkpoint(tmp_path / "checkpoint.npz").opt_state["t"] == 8


# ----------------------------------------------------------------------------------
# What a run leaves, and resume
# ----------------------------------------------------------------------------------

def test_a_run_writes_its_files_with_the_meta_a_resume_reads(tmp_path):
    assert start_run(tmp_path, "--max-steps", "7", n_samples=2) == 0
    ck = load_checkpoint(tmp_path / "checkpoint.npz", for_resume=True)
    assert set(ck.meta) == {"epoch", "batch", "run", "history", "elapsed"}
    assert (ck.meta["epoch"], ck.meta["batch"], ck.opt_state["t"]) == (1, 2, 7)
    assert [row[0] for row in ck.meta["history"]["step_loss"]] == list(range(1, 8))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    first, final = metrics["epochs"]
    assert (first["epoch"], first["step"], first["test_images"]) == (1, 5, 20)
    assert final["final"] and final["step"] == 7 and final["epoch"] == 1.4
    assert np.isclose(final["test_bits_per_dim"], final["test_nats_per_pixel"] / np.log(2))
    for name in ("loss_curve.png", "samples.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_resume_goes_on_exactly_where_the_run_stopped(tmp_path):
    assert start_run(tmp_path / "alone", "--epochs", "2") == 0
    assert start_run(tmp_path / "twice", "--epochs", "2", "--max-steps", "3") == 0
    assert start_run(tmp_path / "twice", "--epochs", "2", resume=True) == 0
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.npz") for d in ("alone", "twice"))
    assert a.opt_state["t"] == b.opt_state["t"] == 10
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        np.testing.assert_array_equal(a.opt_state["v"][k], b.opt_state["v"][k])
    # a changed data setting is refused, naming it
    with pytest.raises(CheckpointError, match="batch_size"):
        start_run(tmp_path / "twice", "--epochs", "2", "--batch-size", "4", resume=True)


def test_a_checkpoint_from_before_max_steps_existed_resumes_without_a_budget_change(tmp_path, capsys):
    assert start_run(tmp_path, "--epochs", "1", "--max-steps", "2") == 0
    ck = load_checkpoint(tmp_path / "checkpoint.npz")
    for key in ("max_steps", "test_protocol", "dataset"):                       # as the running runs wrote it
        del ck.meta["run"][key]
    save_checkpoint(tmp_path / "checkpoint.npz", ck.params, ck.config, ck.opt_state, ck.meta)
    capsys.readouterr()
    assert start_run(tmp_path, "--epochs", "1", resume=True) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "budget changed" not in out


# ----------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------

def test_a_signal_raises_a_flag_and_a_second_one_stops_at_once():
    with Signals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.raised
        with pytest.raises(run_module.Interrupted):
            signals.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with Signals(at_once=False) as signals:              # an engine that updates weights in place
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == [signal.SIGINT, signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # restored


def test_an_interrupt_mid_run_saves_the_last_whole_step(tmp_path, capsys):
    class Interrupting(NumpyEngine):
        def steps(self, *a, **kw):
            for s in super().steps(*a, **kw):
                if s.step == 3:
                    os.kill(os.getpid(), signal.SIGINT)           # during step 3, as a user would
                yield s

    assert start_run(tmp_path, "--epochs", "2", engine=Interrupting) == 130
    err = capsys.readouterr().err
    assert "interrupted: saved" in err and "at step 3" in err and "--resume" in err
    assert load_checkpoint(tmp_path / "checkpoint.npz", for_resume=True).opt_state["t"] == 3


def test_an_interrupt_during_the_final_sampling_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    real = run_module.sample_cached

    def sampling_then_ctrl_c(*args, progress, **kwargs):
        def at(done, total):
            if done == 10:
                os.kill(os.getpid(), signal.SIGINT)
            progress(done, total)
        return real(*args, progress=at, **kwargs)
    monkeypatch.setattr(run_module, "sample_cached", sampling_then_ctrl_c)
    assert start_run(tmp_path, "--max-steps", "3", n_samples=4) == 130
    err = capsys.readouterr().err
    assert "interrupted while sampling" in err and "samples.png" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "samples.png").exists()
    assert load_checkpoint(tmp_path / "checkpoint.npz").opt_state["t"] == 3        # the run itself is saved
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"][-1]["final"]


def test_an_interrupt_during_the_final_evaluation_is_one_line_and_exit_130(tmp_path, capsys):
    class Evaluating(NumpyEngine):
        def test_nll(self, images, labels, protocol, progress=None):
            os.kill(os.getpid(), signal.SIGINT)
            return super().test_nll(images, labels, protocol, progress)

    assert start_run(tmp_path, "--max-steps", "2", engine=Evaluating) == 130
    err = capsys.readouterr().err
    assert "interrupted during the final evaluation" in err and "--resume" in err
    assert load_checkpoint(tmp_path / "checkpoint.npz").opt_state["t"] == 2


def test_a_time_budget_too_small_to_train_is_a_usage_error(tmp_path):
    with pytest.raises(run_module.UsageError, match="leaves no time to train"):
        start_run(tmp_path, "--minutes", "0.01")
