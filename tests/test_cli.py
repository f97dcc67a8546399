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
    (["--seed", "-1"], "--seed"),
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
    assert "4 steps" in r.stdout and "minutes" not in r.stdout     # --max-steps alone: the steps are the budget
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
    assert set(ours) == {"nats_per_image", "nats_per_pixel", "bits_per_dim", "perplexity", "protocol", "draws",
                         "dataset"}
    assert ours["dataset"] == "mnist"
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


# ----------------------------------------------------------------------------------
# Outputs that cannot be written (issue 19): refused before any work, in one line, exit 2
# ----------------------------------------------------------------------------------

EXAMPLES = ROOT / "examples"


def unwritable_cases(tmp):
    """(script, flags, words in the message) for every script's output flags. Tests run
    as root, for whom a chmod'ed folder is still writable: a path under a file, an
    existing file where a folder is wanted and the reverse are unwritable for anyone."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("not a folder")
    a_dir = tmp / "a_dir"
    a_dir.mkdir()
    ck = ["--checkpoint", ROOT / "pixelcnn_np" / "pretrained.npz"]
    return {
        "train --out file": (TRAIN, ["--out", a_file], ["--out", "is a file, not a folder"]),
        "train --out under a file": (TRAIN, ["--out", a_file / "run"], ["--out", "lies under", "a_file.txt, which is a file"]),
        "train_torch --out file": (EXAMPLES / "train_torch.py", ["--out", a_file, "--device", "cpu"],
                                   ["--out", "is a file, not a folder"]),
        "sample --out folder": (SAMPLE, ["--out", a_dir], ["--out", "is a folder"]),
        "sample --npy under a file": (SAMPLE, ["--out", tmp / "s.png", "--npy", a_file / "x" / "s.npy"],
                                      ["--npy", "lies under", "a_file.txt, which is a file"]),
        "tour --out file": (EXAMPLES / "tour.py", ["--out", a_file], ["--out", "is a file, not a folder"]),
        "conditional --figure folder": (EXAMPLES / "conditional_samples.py", [*ck, "--figure", a_dir],
                                        ["--figure", "is a folder"]),
        "conditional --json under a file": (EXAMPLES / "conditional_samples.py",
                                            [*ck, "--figure", tmp / "c.png", "--json", a_file / "c.json"],
                                            ["--json", "lies under", "a_file.txt, which is a file"]),
        "export --out folder": (EXAMPLES / "export_pretrained.py", [*ck, "--trained-with", "x", "--out", a_dir],
                                ["--out", "is a folder"]),
        "make_figures --out file": (EXAMPLES / "make_figures.py", ["--out", a_file],
                                    ["--out", "is a file, not a folder"]),
    }


UNWRITABLE = ["train --out file", "train --out under a file", "train_torch --out file", "sample --out folder",
              "sample --npy under a file", "tour --out file", "conditional --figure folder",
              "conditional --json under a file", "export --out folder", "make_figures --out file"]


@pytest.mark.parametrize("case", UNWRITABLE)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, case):
    cases = unwritable_cases(tmp_path)
    assert sorted(cases) == sorted(UNWRITABLE)
    script, flags, words = cases[case]
    if "train_torch" in str(script):
        pytest.importorskip("torch")
    r = run(script, *flags, "--data-dir", tmp_path / "no_mnist_here", timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert all(w in r.stderr for w in words), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no_mnist_here").exists()                  # no work began: no download
    assert r.stdout == ""                                              # not even the first line of a run


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder: see the test below")
def test_a_read_only_folder_is_refused_before_training(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = run(TRAIN, "--out", ro / "run", "--data-dir", tmp_path / "none", "--no-download")
    finally:
        ro.chmod(0o755)
    assert r.returncode == 2 and "cannot be written" in r.stderr and "Traceback" not in r.stderr


def test_a_read_only_file_system_is_refused_naming_the_folder(tmp_path, monkeypatch, capsys):
    """What a read-only mount answers (EROFS), for root too: the probe file cannot be made."""
    import errno
    import tempfile

    from pixelcnn_np import cli

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    parser = cli.OneLineParser(prog="train_mnist.py")
    for folder, path in ((True, tmp_path / "run"), (False, tmp_path / "new" / "samples.png")):
        with pytest.raises(SystemExit) as e:
            parser.check_output("--out", path, folder=folder)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"train_mnist.py: error: --out {path} cannot be written ({tmp_path}: ")
        assert "Read-only file system" in err and len(err.splitlines()) == 1
    monkeypatch.undo()
    parser.check_output("--out", tmp_path / "new" / "deeper" / "run", folder=True)      # writable: no error
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []           # and nothing left behind


def test_sample_writes_into_folders_it_creates(tmp_path):
    out, npy = tmp_path / "new" / "s.png", tmp_path / "newer" / "deeper" / "s.npy"
    r = run(SAMPLE, "--n", "1", "--out", out, "--npy", npy, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"\x89PNG" and np.load(npy).shape == (1, 28, 28)


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_ctrl_c_during_the_final_sampling_is_one_line_and_exit_130(tmp_path):
    """A real SIGINT, sent by the process to itself at the 10th sampled pixel (a signal
    from outside would race a tiny model's second of sampling)."""
    code = ("import os, signal, sys\n"
            "import pixelcnn_np.run as r\n"
            "real = r.sample_cached\n"
            "def sampling(*a, progress, **k):\n"
            "    def at(d, t):\n"
            "        if d == 10: os.kill(os.getpid(), signal.SIGINT)\n"
            "        progress(d, t)\n"
            "    return real(*a, progress=at, **k)\n"
            "r.sample_cached = sampling\n"
            f"sys.path.insert(0, {str(ROOT / 'examples')!r})\n"
            "import train_mnist\n"
            "sys.exit(train_mnist.main(sys.argv[1:]))\n")
    out = tmp_path / "run"
    r = run("-c", code, "--data-dir", MNIST, "--out", out, "--max-steps", "2", "--eval-limit", "20",
            "--n-samples", "3", "--no-progress", *TINY)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().startswith("interrupted while sampling") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (out / "metrics.json").exists() and not (out / "samples.png").exists()
    from pixelcnn_np.checkpoint import load_checkpoint
    assert load_checkpoint(out / "checkpoint.npz").opt_state["t"] == 2


@pytest.mark.parametrize("script, flags, words", [
    (TRAIN, ["--batch-size", "10000000"], ["a training step at batch 10000000 needs about", "reduce --batch-size"]),
    (TRAIN, ["--kernel-size", "99"], ["config['kernel_size'] = 99", "use kernel_size <= 55"]),
    (TRAIN, ["--dilations", "1,64"], ["config['dilations'] has 64", "use dilations <= 27"]),
    (SAMPLE, ["--n", "1000000000"], ["sampling 1000000000 images needs about", "reduce --n"]),
    (EVALUATE, ["--batch-size", "100000000", "--limit", "100000000"], ["a forward pass at batch", "reduce --batch-size"]),
])
def test_sizes_the_machine_cannot_hold_are_refused_before_the_work(tmp_path, script, flags, words):
    """Issue 19: refused in one line (exit 2) from the estimate, not killed by the OS hours later."""
    extra = ["--out", tmp_path / ("s.png" if script == SAMPLE else "run")] if script != EVALUATE else []
    data = ["--data-dir", MNIST] if script != SAMPLE else []
    r = run(script, *flags, *data, *extra)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and all(w in last for w in words), last
    assert not (tmp_path / "run" / "checkpoint.npz").exists() and not (tmp_path / "s.png").exists()


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_evaluate_on_the_whole_test_set_hints_at_limit(tmp_path):
    code = ("import sys, runpy\n"
            "import pixelcnn_np.train as t\n"
            "t.nll_per_pixel = lambda *a, **k: __import__('numpy').zeros((1, 28, 28))\n"  # skip the 10,000-image pass
            f"sys.argv = ['evaluate.py', '--data-dir', {str(MNIST)!r}]\n"
            f"runpy.run_path({EVALUATE!r}, run_name='__main__')\n")
    r = run("-c", code)
    assert r.returncode == 0, r.stderr
    assert "evaluating all 10000 test images (--limit N for a quicker look)" in r.stderr


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_logistic_mixture_run_evaluates_and_samples(tmp_path):
    out = tmp_path / "mix"
    r = run(TRAIN, "--data-dir", MNIST, "--out", out, "--max-steps", "2", "--eval-limit", "10", "--n-samples", "2",
            "--no-progress", "--pixels", "logistic", "--n-mix", "3", *TINY)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["pixels"] == "logistic" and metrics["config"]["n_mix"] == 3
    assert metrics["test_protocol"] == "8-bit pixels"
    r = run(EVALUATE, "--checkpoint", out / "checkpoint.npz", "--data-dir", MNIST, "--limit", "10", "--json")
    assert r.returncode == 0, r.stderr
    assert np.isclose(json.loads(r.stdout)["nats_per_pixel"], metrics["epochs"][-1]["test_nats_per_pixel"])
    r = run(SAMPLE, "--checkpoint", out / "checkpoint.npz", "--n", "2", "--out", tmp_path / "m.png", "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run(TRAIN, "--data-dir", MNIST, "--out", tmp_path / "x", "--n-mix", "3", *TINY)
    assert r.returncode == 2 and "n_mix" in r.stderr


FASHION = Path("/usr/share/datasets/fashion-mnist")      # apt-get install dataset-fashion-mnist


@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST not installed")
def test_train_on_fashion_mnist_and_evaluate_it(tmp_path):
    out = tmp_path / "fashion"
    r = run(TRAIN, "--dataset", "fashion-mnist", "--data-dir", FASHION, "--out", out, "--max-steps", "2",
            "--eval-limit", "10", "--n-samples", "0", "--no-progress", *TINY)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["dataset"] == "fashion-mnist"
    # evaluate.py takes the checkpoint's dataset by default
    r = run(EVALUATE, "--checkpoint", out / "checkpoint.npz", "--data-dir", FASHION, "--limit", "10", "--json")
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    assert ours["dataset"] == "fashion-mnist"
    assert np.isclose(ours["nats_per_pixel"], metrics["epochs"][-1]["test_nats_per_pixel"])
    # resuming on another dataset is refused, naming it
    r = run(TRAIN, "--dataset", "mnist", "--data-dir", MNIST, "--out", out, "--resume", "--max-steps", "3",
            "--no-progress", *TINY)
    assert r.returncode == 2 and "dataset" in r.stderr, r.stderr
    # MNIST's files given as Fashion-MNIST are refused by checksum, offline
    r = run(TRAIN, "--dataset", "fashion-mnist", "--data-dir", MNIST, "--no-download", "--out", tmp_path / "x",
            "--max-steps", "1", *TINY)
    assert r.returncode == 1 and "MNIST" in r.stderr and "Traceback" not in r.stderr, r.stderr
