"""The example scripts as a user meets them: bad flags, missing files, a tiny real run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "mnist"
TRAIN = str(ROOT / "examples" / "train_mnist.py")
SAMPLE = str(ROOT / "examples" / "sample.py")
TINY = ["--model", "gated", "--hidden", "4", "--dilations", "1,1", "--batch-size", "16"]


def run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("flags, word", [
    (["--epochs", "-1"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "abc"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--kernel-size", "4"], "--kernel-size"),
    (["--dilations", "1,0"], "--dilations"),
    (["--preset", "huge"], "--preset"),
    (["--minutes", "-5"], "--minutes"),
    (["--resume", "--out", "/nonexistent/run"], "no checkpoint"),
])
def test_bad_training_flags_exit_2_without_traceback(flags, word):
    r = run(TRAIN, *flags)
    assert r.returncode == 2, r.stderr
    assert word in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("value", ["zero", "0", "-1"])
def test_a_bad_thread_count_in_the_environment_is_a_usage_error(value):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PIXELCNN_NP_THREADS=value)
    r = subprocess.run([sys.executable, str(TRAIN), "--max-steps", "1"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "PIXELCNN_NP_THREADS" in r.stderr and "Traceback" not in r.stderr


def test_missing_data_is_a_clear_error(tmp_path):
    r = run(TRAIN, "--data-dir", tmp_path, "--no-download", "--max-steps", "1")
    assert r.returncode == 1
    assert "train-images-idx3-ubyte" in r.stderr and "--data-dir" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("flags, word", [
    (["--checkpoint", "/nonexistent/c.npz"], "no checkpoint"),
    (["--n", "0"], "--n"),
    (["--temperature", "0"], "--temperature"),
    (["--method", "fast"], "--method"),
])
def test_bad_sampling_flags_exit_2_without_traceback(flags, word):
    r = run(SAMPLE, *flags)
    assert r.returncode == 2, r.stderr
    assert word in r.stderr
    assert "Traceback" not in r.stderr


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "c.npz"
    bad.write_bytes(b"not a checkpoint")
    r = run(SAMPLE, "--checkpoint", bad, "--out", tmp_path / "s.png")
    assert r.returncode == 2
    assert str(bad) in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_tiny_training_run_then_sampling(tmp_path):
    out = tmp_path / "run"
    r = run(TRAIN, "--data-dir", MNIST, "--out", out, "--max-steps", "4", "--eval-limit", "40",
            "--n-samples", "2", "--no-progress", *TINY)
    assert r.returncode == 0, r.stderr
    for name in ("checkpoint.npz", "metrics.json", "loss_curve.png", "samples.png"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    final = metrics["epochs"][-1]
    assert final["step"] == 4 and 0 < final["test_nats_per_pixel"] < 1
    assert np.isclose(final["test_bits_per_dim"], final["test_nats_per_pixel"] / np.log(2))
    assert metrics["test_protocol"] == "threshold"
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        assert "param/out.w" in z.files and "adam/t" in z.files

    # sampling: cached and naive give the same images for the same seed
    r1 = run(SAMPLE, "--checkpoint", out / "checkpoint.npz", "--n", "2", "--seed", "5", "--out", tmp_path / "a.png",
             "--npy", tmp_path / "a.npy", "--no-progress")
    r2 = run(SAMPLE, "--checkpoint", out / "checkpoint.npz", "--n", "2", "--seed", "5", "--method", "naive",
             "--out", tmp_path / "b.png", "--npy", tmp_path / "b.npy", "--no-progress")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))

    # completions keep the given rows
    r3 = run(SAMPLE, "--checkpoint", out / "checkpoint.npz", "--n", "3", "--complete-rows", "20",
             "--data-dir", MNIST, "--out", tmp_path / "c.png", "--npy", tmp_path / "c.npy", "--no-progress")
    assert r3.returncode == 0, r3.stderr
    from pixelcnn_np.data import binarize, load_mnist
    originals = binarize(load_mnist(MNIST)["test_images"][:3])
    done = np.load(tmp_path / "c.npy")                          # 3 completions of each of 3 digits
    assert done.shape == (9, 28, 28)
    np.testing.assert_array_equal(done[:, :20], np.tile(originals, (3, 1, 1))[:, :20])

    # resuming with a different architecture is refused
    r4 = run(TRAIN, "--data-dir", MNIST, "--out", out, "--resume", "--max-steps", "5", "--no-progress",
             "--model", "gated", "--hidden", "8", "--dilations", "1,1", "--batch-size", "16")
    assert r4.returncode == 2 and "hidden" in r4.stderr and "Traceback" not in r4.stderr


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Kill -9 a run right after a checkpoint, resume it, and get bit-identical weights."""
    import signal
    import time

    from pixelcnn_np.checkpoint import load_checkpoint

    steps = 300                                        # long enough that the kill lands mid-way
    common = ["--data-dir", MNIST, "--epochs", "1", "--max-steps", str(steps), "--save-every", "3",
              "--eval-limit", "20", "--n-samples", "0", "--no-progress", *TINY]
    full = run(TRAIN, *common, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, TRAIN, *map(str, common), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ckpt = out / "checkpoint.npz"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                if load_checkpoint(ckpt).opt_state["t"] >= 3:
                    break
            except Exception:
                pass                                   # being replaced right now: look again
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt).opt_state["t"]
    assert 3 <= killed_at < steps, f"the run was not interrupted mid-way (checkpoint at step {killed_at})"

    resumed = run(TRAIN, *common, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.npz"), load_checkpoint(ckpt)
    assert a.opt_state["t"] == b.opt_state["t"] == steps
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        np.testing.assert_array_equal(a.opt_state["m"][k], b.opt_state["m"][k])


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    """SIGINT mid-run: exit code 130, a one-line message, and a checkpoint to resume from
    (the step in progress is finished first, so there is always at least one)."""
    import signal
    import time

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, TRAIN, "--data-dir", str(MNIST), "--epochs", "1", "--save-every", "1000",
                             "--n-samples", "0", "--no-progress", "--out", str(out), *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and "model gated" not in (line := proc.stdout.readline()):
        pass
    # At once, while the first step is still loading its Numba kernels: an exception raised
    # there used to come out as a SystemError; the handler now only raises a flag.
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: saved" in err and "--resume" in err and "Traceback" not in err
    from pixelcnn_np.checkpoint import load_checkpoint
    assert load_checkpoint(out / "checkpoint.npz").opt_state["t"] >= 1


EVALUATE = str(ROOT / "examples" / "evaluate.py")


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_dynamic_training_is_measured_under_the_stochastic_protocol(tmp_path):
    out = tmp_path / "dyn"
    r = run(TRAIN, "--data-dir", MNIST, "--out", out, "--max-steps", "2", "--eval-limit", "20",
            "--n-samples", "0", "--no-progress", "--binarize", "dynamic", *TINY)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_protocol"] == "stochastic" and metrics["run"]["test_protocol"] == "stochastic"
    r = run(EVALUATE, "--checkpoint", out / "checkpoint.npz", "--data-dir", MNIST, "--limit", "20", "--json",
            "--protocol", "stochastic")
    assert r.returncode == 0, r.stderr
    assert np.isclose(json.loads(r.stdout)["nats_per_pixel"], metrics["epochs"][-1]["test_nats_per_pixel"])


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_evaluate_json_and_backends_agree():
    r = run(EVALUATE, "--data-dir", MNIST, "--limit", "60", "--json")
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    assert set(ours) == {"nats_per_image", "nats_per_pixel", "bits_per_dim", "perplexity", "protocol", "draws"}
    assert (ours["protocol"], ours["draws"]) == ("threshold", 1)
    assert 0.03 < ours["nats_per_pixel"] < 0.2                  # the shipped model is trained
    assert np.isclose(ours["nats_per_image"], 784 * ours["nats_per_pixel"])
    assert np.isclose(ours["perplexity"], np.exp(ours["nats_per_pixel"]))
    pytest.importorskip("torch")
    r = run(EVALUATE, "--data-dir", MNIST, "--limit", "60", "--json", "--backend", "torch")
    assert r.returncode == 0, r.stderr
    theirs = json.loads(r.stdout)
    assert abs(theirs["nats_per_pixel"] - ours["nats_per_pixel"]) <= 1e-5 * ours["nats_per_pixel"]


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_evaluate_stochastic_protocol():
    args = ("--data-dir", MNIST, "--limit", "30", "--json")
    r = run(EVALUATE, *args, "--protocol", "stochastic", "--draws", "2")
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    assert (ours["protocol"], ours["draws"]) == ("stochastic", 2)
    threshold = json.loads(run(EVALUATE, *args).stdout)
    # the shipped model learned threshold digits: Bernoulli-drawn ones are harder for it
    assert ours["nats_per_pixel"] > threshold["nats_per_pixel"]
    pytest.importorskip("torch")
    r = run(EVALUATE, *args, "--protocol", "stochastic", "--draws", "2", "--backend", "torch")
    assert r.returncode == 0, r.stderr
    assert abs(json.loads(r.stdout)["nats_per_pixel"] - ours["nats_per_pixel"]) <= 1e-5 * ours["nats_per_pixel"]


def test_evaluate_refuses_a_missing_checkpoint():
    r = run(EVALUATE, "--checkpoint", "/nonexistent/c.npz")
    assert r.returncode == 2 and "no checkpoint" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_a_time_budget_is_kept(tmp_path):
    """--minutes bounds the whole run, evaluation and samples included."""
    out = tmp_path / "run"
    r = run(TRAIN, "--data-dir", MNIST, "--out", out, "--minutes", "0.25", "--eval-limit", "50",
            "--n-samples", "1", "--no-progress", *TINY)
    assert r.returncode == 0, r.stderr
    final = json.loads((out / "metrics.json").read_text())["epochs"][-1]
    assert final["step"] > 10
    assert final["seconds"] <= 0.25 * 60 + 3                      # the final evaluation is inside the budget

    # a finished run extended with a larger budget trains on, within the new budget
    r2 = run(TRAIN, "--data-dir", MNIST, "--out", out, "--resume", "--minutes", "0.4", "--eval-limit", "50",
             "--n-samples", "1", "--no-progress", *TINY)
    assert r2.returncode == 0, r2.stderr
    assert "budget changed from 0.25 minutes to 0.4 minutes" in r2.stdout
    extended = json.loads((out / "metrics.json").read_text())["epochs"][-1]
    assert extended["step"] > final["step"] + 10
    assert extended["seconds"] <= 0.4 * 60 + 3


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_conditional_training_sampling_and_evaluation(tmp_path):
    """--conditional end to end: train a few steps, sample chosen digits (cached ==
    naive), evaluate p(x | y) with both backends, and clear errors for misuse."""
    out = tmp_path / "run"
    r = run(TRAIN, "--data-dir", MNIST, "--out", out, "--max-steps", "3", "--eval-limit", "30",
            "--n-samples", "2", "--no-progress", "--conditional", *TINY)
    assert r.returncode == 0, r.stderr
    ck = out / "checkpoint.npz"
    from pixelcnn_np.checkpoint import load_checkpoint
    saved = load_checkpoint(ck)
    assert saved.config["n_classes"] == 10 and saved.params["h0.cond"].shape == (8, 10)

    npy = {}
    for method in ("cached", "naive"):
        r = run(SAMPLE, "--checkpoint", ck, "--n", "4", "--digits", "3,7", "--method", method, "--seed", "2",
                "--out", tmp_path / f"{method}.png", "--npy", tmp_path / f"{method}.npy", "--no-progress")
        assert r.returncode == 0, r.stderr
        npy[method] = np.load(tmp_path / f"{method}.npy")
    np.testing.assert_array_equal(npy["cached"], npy["naive"])

    r = run(EVALUATE, "--checkpoint", ck, "--data-dir", MNIST, "--limit", "20", "--json")
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)["nats_per_pixel"]
    if __import__("importlib").util.find_spec("torch"):
        r = run(EVALUATE, "--checkpoint", ck, "--data-dir", MNIST, "--limit", "20", "--json", "--backend", "torch")
        assert r.returncode == 0, r.stderr
        assert abs(json.loads(r.stdout)["nats_per_pixel"] - ours) <= 1e-5 * ours

    # judged by the three classifiers (fitted on a few digits here: a smoke test of the script)
    r = run(ROOT / "examples" / "conditional_samples.py", "--checkpoint", ck, "--data-dir", MNIST, "--per-digit", "2",
            "--judge-limit", "300", "--figure", tmp_path / "cond.png", "--json", tmp_path / "cond.json",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    judged = json.loads((tmp_path / "cond.json").read_text())
    assert set(judged["judges"]) == {"softmax regression", "3-NN", "MLP"} and judged["samples"] == 20
    assert all(0.5 < j["judge_test_accuracy"] <= 1 for j in judged["judges"].values())   # 300 digits: > 50%
    r = run(ROOT / "examples" / "conditional_samples.py", "--checkpoint", ROOT / "pixelcnn_np" / "pretrained.npz")
    assert r.returncode == 2 and "not a class-conditional" in r.stderr and "Traceback" not in r.stderr

    r = run(SAMPLE, "--checkpoint", ck, "--digits", "10", "--out", tmp_path / "x.png")
    assert r.returncode == 2 and "0..9" in r.stderr and "Traceback" not in r.stderr
    r = run(SAMPLE, "--digits", "3", "--out", tmp_path / "x.png")          # the unconditional pretrained model
    assert r.returncode == 2 and "class-conditional" in r.stderr and "Traceback" not in r.stderr
