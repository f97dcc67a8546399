"""examples/train_torch.py and pixelcnn_np/torch_engine.py: PyTorch training on the same data, schedule and checkpoints.

* its Adam is ours bit for bit, and its training steps are ours (float64, in process),
  also when a run switches framework mid-way;
* `torchrun --nproc_per_node 2` (gloo) equals one process over the same global batches,
  and writes a checkpoint that sample.py and evaluate.py read;
* train_mnist.py -> train_torch.py -> train_mnist.py, each resuming the last one's
  checkpoint, ends where NumPy alone ends (real MNIST, when present).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MNIST = ROOT.parent / "shared" / "mnist"
TRAIN_NP, TRAIN_TORCH = str(EXAMPLES / "train_mnist.py"), str(EXAMPLES / "train_torch.py")
SAMPLE, EVALUATE = str(EXAMPLES / "sample.py"), str(EXAMPLES / "evaluate.py")
TINY = ["--model", "gated", "--hidden", "4", "--dilations", "1,1"]

from pixelcnn_np import gated, torch_engine  # noqa: E402
from pixelcnn_np.adam import adam_init, adam_step  # noqa: E402
from pixelcnn_np.checkpoint import load_checkpoint  # noqa: E402
from pixelcnn_np.models import make_config  # noqa: E402
from pixelcnn_np.run import cosine_rate  # noqa: E402
from pixelcnn_np.torch_bridge import from_torch, to_torch  # noqa: E402
from pixelcnn_np.train import training_steps  # noqa: E402


def run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def torchrun():
    """The torchrun launcher as a command prefix (the console script, or its module)."""
    exe = shutil.which("torchrun")
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


def assert_same_state(a, b, rtol, atol, moments_rtol):
    """Two (params, opt_state) pairs agree: the step count, the weights (rtol, atol), and
    both Adam moments to moments_rtol of each tensor's largest entry (a lost or reset
    Adam state would be off by its whole size)."""
    (pa, sa), (pb, sb) = a, b
    assert sa["t"] == sb["t"]
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=rtol, atol=atol, err_msg=k)
        for moment in ("m", "v"):
            ref = sb[moment][k]
            np.testing.assert_allclose(sa[moment][k], ref, rtol=0, atol=moments_rtol * np.abs(ref).max(),
                                       err_msg=f"{moment} of {k}")


# ----------------------------------------------------------------------------------
# In process: Adam, one step, a switch of framework
# ----------------------------------------------------------------------------------

def test_adam_step_torch_is_adam_step_bit_for_bit():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    tparams = {k: torch.nn.Parameter(torch.from_numpy(p.copy())) for k, p in params.items()}
    state, tstate = adam_init(params), torch_engine.adam_state_to_torch(adam_init(params), "cpu")
    for lr in (3e-3, 1e-3, 2.5e-4):
        grads = {k: (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-6, 2)).astype(np.float32)
                 for k, p in params.items()}
        params, state = adam_step(params, grads, state, lr)
        torch_engine.adam_step_torch(tparams, {k: torch.from_numpy(g) for k, g in grads.items()}, tstate, lr)
    back = torch_engine.adam_state_from_torch(tstate)
    assert back["t"] == state["t"] == 3
    for k in params:
        np.testing.assert_array_equal(tparams[k].detach().numpy(), params[k])
        np.testing.assert_array_equal(back["m"][k], state["m"][k])
        np.testing.assert_array_equal(back["v"][k], state["v"][k])


def test_shards_cover_every_row_once():
    for n in (0, 1, 7, 15, 64):
        for world in (1, 2, 3, 8):
            rows = np.concatenate([np.arange(n)[torch_engine.shard(n, r, world)] for r in range(world)])
            np.testing.assert_array_equal(rows, np.arange(n))


def test_labels_reach_the_module_only_when_conditional():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, labels=None):
            seen.append(labels)
            return x

    pixels, labels = np.ones((3, 28, 28), np.uint8), np.array([7, 0, 2], np.uint8)
    for config in (make_config("gated"), dict(make_config("gated"), n_classes=10)):
        x, target, y = torch_engine.batch_tensors(pixels, labels, config, "cpu", np.float32)
        torch_engine.run_network(Recorder(), x, y)
        assert x.shape == (3, 1, 28, 28) and target is x
    assert seen[0] is None
    assert seen[1].dtype == torch.int64 and seen[1].tolist() == [7, 0, 2]


def numpy_steps(params, opt, images, config, n, start, lr, labels=None):
    """n steps of train.training_steps from step `start` (epoch, batch from it, batch 8)."""
    s = None
    extra = {} if labels is None else {"train_labels": labels}
    for s in training_steps(params, opt, images, config, epochs=10, batch_size=8, lr=lr, seed=3,
                            start_epoch=start // 5, start_batch=start % 5, dtype=np.float64, **extra):
        if s.step == start + n:
            break
    return s.params, s.opt_state


def torch_steps(params, opt, images, labels, config, n, start, lr):
    """The same n steps, taken by torch_engine.torch_training_steps."""
    module = to_torch(params, config)
    tparams, topt = torch_engine.named_parameters(module, config), torch_engine.adam_state_to_torch(opt, "cpu")
    for s in torch_engine.torch_training_steps(module, tparams, topt, images, labels, config, epochs=10,
                                              batch_size=8, lr=lr, seed=3, start_epoch=start // 5,
                                              start_batch=start % 5):
        if s.step == start + n:
            break
    return from_torch(module)[0], torch_engine.adam_state_from_torch(topt)


def test_numpy_then_torch_then_numpy_equals_numpy_alone_float64():
    """Across an epoch boundary (40 images, batch 8: 5 steps an epoch), in float64."""
    config = make_config("gated", hidden=4, dilations=[1, 2])
    data = torch_engine.synthetic_mnist(40)
    images, labels = data["train_images"], data["train_labels"]
    params = gated.init_params(config, np.random.default_rng(0), np.float64)
    lr = lambda step: cosine_rate(3e-3, step / 20)            # noqa: E731  (the schedule matters too)

    alone = numpy_steps(params, adam_init(params), images, config, 7, 0, lr)
    first = numpy_steps(params, adam_init(params), images, config, 2, 0, lr)
    mixed = torch_steps(*first, images, labels, config, 4, 2, lr)
    mixed = numpy_steps(*mixed, images, config, 1, 6, lr)
    torch_alone = torch_steps(params, adam_init(params), images, labels, config, 7, 0, lr)
    assert_same_state(mixed, alone, rtol=1e-9, atol=1e-12, moments_rtol=1e-9)
    assert_same_state(torch_alone, alone, rtol=1e-9, atol=1e-12, moments_rtol=1e-9)

    # negative control: the same switch without carrying Adam's moments over ends elsewhere
    forgetful = torch_steps(first[0], dict(adam_init(first[0]), t=2), images, labels, config, 4, 2, lr)
    forgetful = numpy_steps(*forgetful, images, config, 1, 6, lr)
    with pytest.raises(AssertionError):
        assert_same_state(forgetful, alone, rtol=1e-4, atol=1e-6, moments_rtol=1e-3)
    assert not np.allclose(alone[0]["out.w"], params["out.w"])   # it did train


def test_a_conditional_model_trains_on_each_batch_labels_float64():
    try:
        config = make_config("gated", hidden=4, dilations=[1, 2], n_classes=10)
    except ValueError:
        pytest.skip("the models have no class-conditional version yet")
    data = torch_engine.synthetic_mnist(40)
    images, labels = data["train_images"], data["train_labels"].astype(np.int64)
    params = gated.init_params(config, np.random.default_rng(0), np.float64)
    ours = numpy_steps(params, adam_init(params), images, config, 6, 0, 3e-3, labels=labels)
    theirs = torch_steps(params, adam_init(params), images, labels, config, 6, 0, 3e-3)
    assert_same_state(theirs, ours, rtol=1e-9, atol=1e-12, moments_rtol=1e-9)
    wrong = torch_steps(params, adam_init(params), images, (labels + 1) % 10, config, 6, 0, 3e-3)
    assert not np.allclose(wrong[0]["v0.cond"], ours[0]["v0.cond"])          # the labels are used


# ----------------------------------------------------------------------------------
# The scripts
# ----------------------------------------------------------------------------------

def test_two_processes_equal_one_and_write_a_checkpoint_pixelcnn_np_reads(tmp_path):
    """64 synthetic images, global batch 15 (shares 7 + 8, last batch 4): one epoch, 5 steps."""
    flags = [*TINY, "--synthetic", "64", "--batch-size", "15", "--epochs", "1", "--eval-limit", "8",
             "--n-samples", "0", "--no-progress", "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    two = subprocess.run([*torchrun(), "--nproc_per_node", "2", TRAIN_TORCH, *flags, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr
    assert "2 processes" in two.stdout and two.stdout.count("done:") == 1      # only rank 0 speaks
    one = run(TRAIN_TORCH, *flags, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr

    a, b = load_checkpoint(tmp_path / "two" / "checkpoint.npz"), load_checkpoint(tmp_path / "one" / "checkpoint.npz")
    assert a.opt_state["t"] == 5 and a.meta["epoch"] == 1 and a.meta["batch"] == 0
    assert_same_state((a.params, a.opt_state), (b.params, b.opt_state), rtol=1e-5, atol=1e-6,
                      moments_rtol=1e-4)
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["epochs"][-1]["step"] == 5 and 0.6 < metrics["epochs"][-1]["test_nats_per_pixel"] < 0.8

    ck = tmp_path / "two" / "checkpoint.npz"
    r = run(SAMPLE, "--checkpoint", ck, "--n", "2", "--out", tmp_path / "s.png", "--npy", tmp_path / "s.npy",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "s.npy").shape == (2, 28, 28)
    if MNIST.exists():
        r = run(EVALUATE, "--checkpoint", ck, "--data-dir", MNIST, "--limit", "10", "--json")
        assert r.returncode == 0, r.stderr
        assert 0 < json.loads(r.stdout)["nats_per_pixel"] < 2


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_resume_across_frameworks_through_the_scripts(tmp_path):
    """NumPy 2 steps, PyTorch to step 4, NumPy to step 6 == NumPy's 6 steps (float32)."""
    from pixelcnn_np.data import load_mnist
    from pixelcnn_np.models import get_model
    from pixelcnn_np.presets import resolve, training_parser

    flags = [*TINY, "--batch-size", "16", "--epochs", "1", "--data-dir", MNIST, "--eval-limit", "10",
             "--n-samples", "0", "--no-progress", "--out", tmp_path]
    for script, steps, resume in ((TRAIN_NP, 2, []), (TRAIN_TORCH, 4, ["--resume"]), (TRAIN_NP, 6, ["--resume"])):
        r = run(script, *flags, "--max-steps", steps, *resume)
        assert r.returncode == 0, r.stderr
    mixed = load_checkpoint(tmp_path / "checkpoint.npz")

    config, settings = resolve(training_parser().parse_args(list(map(str, flags))))
    params = get_model(config).init_params(config, np.random.default_rng(0))
    images = load_mnist(MNIST)["train_images"]
    per_epoch = -(-len(images) // 16)
    for s in training_steps(params, adam_init(params), images, config, epochs=1, batch_size=16, seed=0,
                            lr=lambda step: cosine_rate(settings["lr"], step / per_epoch)):
        if s.step == 6:
            break
    assert_same_state((mixed.params, mixed.opt_state), (s.params, s.opt_state), rtol=1e-4, atol=2e-6,
                      moments_rtol=1e-3)
