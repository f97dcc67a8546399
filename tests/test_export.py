"""examples/export_pretrained.py: a training checkpoint becomes a weights-only float32 file
whose recorded test NLL is the one a user reproduces, and bad requests lose nothing."""

import sys
from pathlib import Path

import numpy as np
import pytest

from pixelcnn_np.adam import adam_init
from pixelcnn_np.checkpoint import load_checkpoint, save_checkpoint
from pixelcnn_np.models import get_model, make_config

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "mnist"
sys.path.insert(0, str(ROOT / "examples"))
import export_pretrained  # noqa: E402


def training_checkpoint(path):
    """A tiny gated model saved as train_mnist.py saves one: weights, Adam state, run meta."""
    config = make_config("gated", hidden=4, dilations=[1, 1])
    params = get_model(config).init_params(config, np.random.default_rng(0), np.float32)
    opt = adam_init(params)
    opt["t"] = 7
    meta = {"epoch": 0, "batch": 7, "run": {"batch_size": 64, "seed": 0, "binarize": "threshold"},
            "history": {"step_loss": [[1, 0.7]]}, "elapsed": 12.5}
    save_checkpoint(path, params, config, opt, meta)
    return params, config


def test_too_large_is_refused_and_an_existing_file_survives(tmp_path, capsys):
    training_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / "pretrained.npz"
    out.write_bytes(b"the user's old file")
    with pytest.raises(SystemExit) as e:
        export_pretrained.main(["--checkpoint", str(tmp_path / "ck.npz"), "--out", str(out),
                                "--trained-with", "x", "--max-mb", "0.0001", "--no-download",
                                "--data-dir", str(tmp_path / "nothing")])
    assert e.value.code == 2 and "--max-mb" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's old file"


def test_refuses_to_overwrite_the_training_checkpoint(tmp_path):
    training_checkpoint(tmp_path / "ck.npz")
    with pytest.raises(SystemExit) as e:
        export_pretrained.main(["--checkpoint", str(tmp_path / "ck.npz"), "--out", str(tmp_path / "ck.npz"),
                                "--trained-with", "x"])
    assert e.value.code == 2
    assert load_checkpoint(tmp_path / "ck.npz").opt_state["t"] == 7          # Adam state still there


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_export_keeps_weights_drops_adam_and_records_the_reproducible_nll(tmp_path):
    from pixelcnn_np.data import load_mnist
    from pixelcnn_np.train import evaluate

    params, config = training_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / "pretrained.npz"
    rc = export_pretrained.main(["--checkpoint", str(tmp_path / "ck.npz"), "--out", str(out),
                                 "--trained-with", "python examples/train_mnist.py --tiny",
                                 "--data-dir", str(MNIST), "--no-download"])
    assert rc == 0
    ck = load_checkpoint(out)
    assert ck.opt_state is None and ck.config == config
    assert all(v.dtype == np.float32 for v in ck.params.values())
    for k in params:
        np.testing.assert_array_equal(ck.params[k], params[k])
    assert ck.meta["trained_with"] == "python examples/train_mnist.py --tiny"
    assert ck.meta["steps"] == 7 and ck.meta["training_seconds"] == 12.5
    assert ck.meta["epochs"] == round(7 / 938, 3)
    test = load_mnist(MNIST)["test_images"]
    assert ck.meta["test_images"] == len(test) == 10000
    assert ck.meta["test_nats_per_pixel"] == evaluate(ck.params, ck.config, test)
    assert 0.1 < ck.meta["test_nats_per_pixel"] < 0.8                        # an untrained net: near ln 2
