"""Training on colour images: train_colour.py (train_mnist.py's run on a colour dataset),
then sample.py and evaluate.py on its checkpoint, as a user meets them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelcnn_np.checkpoint import load_checkpoint
from pixelcnn_np.presets import resolve, training_parser

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "mnist"
EXAMPLES = ROOT / "examples"
TINY = ["--hidden", "6", "--dilations", "1,2", "--batch-size", "8", "--eval-limit", "16", "--n-samples", "2",
        "--no-progress"]


def run(script, *args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("dataset, channels, side, pixels", [
    ("mnist", None, 28, "binary"), ("fashion-mnist", None, 28, "binary"),
    ("colour-mnist-v1", 3, 28, "8bit"), ("cifar-10", 3, 32, "8bit")])
def test_the_dataset_fixes_size_colour_and_default_pixels(dataset, channels, side, pixels):
    config, run_settings = resolve(training_parser().parse_args(["--dataset", dataset]))
    assert config.get("channels") == channels and config["height"] == config["width"] == side
    assert config["pixels"] == pixels and run_settings["dataset"] == dataset


def test_train_colour_defaults_to_colour_mnist_and_takes_every_pixel_type():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import train_colour
    finally:
        sys.path.remove(str(EXAMPLES))
    parser = train_colour.build_parser()
    for pixels in ("binary", "8bit", "logistic"):
        config, run_settings = resolve(parser.parse_args(["--pixels", pixels]))
        assert run_settings["dataset"] == "colour-mnist-v1" and config["channels"] == 3 and config["pixels"] == pixels


def test_dynamic_binarization_of_8bit_pixels_is_refused():
    with pytest.raises(ValueError, match="--binarize dynamic applies to --pixels binary"):
        resolve(training_parser().parse_args(["--dataset", "colour-mnist-v1", "--binarize", "dynamic"]))


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_a_tiny_colour_run_then_sampling_and_evaluation(tmp_path):
    out = tmp_path / "run"
    r = run("train_colour.py", "--data-dir", MNIST, "--max-steps", "2", "--out", out, *TINY)
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck.config["channels"] == 3 and ck.params["conv0.w"].shape[1] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    final = metrics["epochs"][-1]
    assert metrics["run"]["dataset"] == "colour-mnist-v1" and np.isfinite(final["test_bits_per_dim"])
    assert np.isclose(final["test_nats_per_image"], final["test"] * 3 * 28 * 28)   # 3 H W sub-pixels
    assert (out / "samples.png").exists()

    npy = tmp_path / "s.npy"
    r = run("sample.py", "--checkpoint", out / "checkpoint.npz", "--n", "2", "--out", tmp_path / "s.png",
            "--npy", npy, "--no-progress", "--complete-rows", "27", "--completions", "1", "--data-dir", MNIST)
    assert r.returncode == 0, r.stderr
    images = np.load(npy)
    assert images.shape == (2, 3, 28, 28) and images.dtype == np.uint8

    r = run("evaluate.py", "--checkpoint", out / "checkpoint.npz", "--limit", "8", "--json", "--data-dir", MNIST)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["dataset"] == "colour-mnist-v1" and np.isfinite(report["bits_per_dim"])

    r = run("evaluate.py", "--checkpoint", out / "checkpoint.npz", "--limit", "8", "--dataset", "mnist",
            "--data-dir", MNIST)
    assert r.returncode == 2 and "reads (3, 28, 28)" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_train_torch_trains_colour_and_both_backends_agree(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "torch_run"
    r = run("train_torch.py", "--dataset", "colour-mnist-v1", "--data-dir", MNIST, "--max-steps", "2", "--out", out,
            *TINY)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out / "checkpoint.npz").config["channels"] == 3
    reports = []
    for backend in ("numpy", "torch"):
        r = run("evaluate.py", "--checkpoint", out / "checkpoint.npz", "--limit", "8", "--json", "--backend", backend,
                "--data-dir", MNIST)
        assert r.returncode == 0, r.stderr
        reports.append(json.loads(r.stdout))
    assert np.isclose(reports[0]["bits_per_dim"], reports[1]["bits_per_dim"], rtol=1e-5)
