"""The guided tour (examples/tour.py) runs end to end with --quick and writes its figures.

It runs as a subprocess, exactly as a user would run it. With MNIST beside the project
(../shared/mnist) the tour also draws the test-set figures; without it (the second run
points it at an empty folder) it must skip them with a note and still succeed: it never
downloads.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "mnist"

ALWAYS = ["01_masked_conv_5x5.png", "02_autoregressive.png", "03_gradient_check.png",
          "04_training_steps.png", "05_samples.png", "06_receptive_field.png", "08_ink_probability.png"]
WITH_MNIST = ["07_per_pixel_nll.png", "07_likelihood_extremes.png"]


def run_tour(out, data_dir):
    # One BLAS thread: on a shared CI machine, OpenBLAS threads waiting on a busy core
    # make the forward passes several times slower; the tour's results do not change.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PIXELCNN_NP_DATA=str(data_dir))
    return subprocess.run([sys.executable, str(ROOT / "examples" / "tour.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("with_mnist", [True, False], ids=["mnist", "no-mnist"])
def test_tour_quick_writes_every_figure(tmp_path, with_mnist):
    if with_mnist and not MNIST.exists():
        pytest.skip(f"real MNIST not found at {MNIST}")
    data_dir = MNIST if with_mnist else tmp_path / "no_mnist_here"
    result = run_tour(tmp_path / "figures", data_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = ALWAYS + (WITH_MNIST if with_mnist else [])
    for name in expected:
        path = tmp_path / "figures" / name
        assert path.exists(), f"the tour did not write {name}"
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(expected)   # --quick: no GIF
    assert "tour done" in result.stdout
    if not with_mnist:
        assert "MNIST is not on disk" in result.stdout
        assert not (tmp_path / "no_mnist_here").exists()                      # nothing was downloaded


def test_an_unknown_flag_is_a_usage_error_outside_a_notebook():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "tour.py"), "--bogus"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr and "Traceback" not in r.stderr
