"""The shipped models by name: sample.py / evaluate.py --checkpoint NAME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelcnn_np import cli

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "mnist"


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=env)


def test_names_resolve_to_the_shipped_files_and_anything_else_is_a_path():
    shipped = cli.pretrained_models()
    assert shipped["seed"][0] == cli.PRETRAINED and cli.checkpoint_path(None) == cli.PRETRAINED
    for name, (path, text) in shipped.items():
        assert cli.checkpoint_path(name) == path and path.exists() and text
        assert name in cli.checkpoint_help()
    assert cli.checkpoint_path("runs/x/checkpoint.npz") == Path("runs/x/checkpoint.npz")
    assert set(shipped) <= set(cli.PRETRAINED_MODELS)


def test_an_unknown_name_is_a_missing_checkpoint_in_one_line(tmp_path):
    r = run("sample.py", "--checkpoint", "no-such-model", "--out", tmp_path / "s.png")
    assert r.returncode == 2 and "no checkpoint at no-such-model" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
@pytest.mark.parametrize("name", sorted(cli.pretrained_models()))
def test_evaluate_takes_a_name_and_its_own_protocol(name):
    r = run("evaluate.py", "--checkpoint", name, "--limit", "20", "--json", "--data-dir", MNIST)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    from pixelcnn_np.checkpoint import load_checkpoint
    meta = load_checkpoint(cli.checkpoint_path(name)).meta
    expected = meta.get("run", {}).get("test_protocol", "threshold") if report["protocol"] != "8-bit pixels" else None
    assert expected is None or report["protocol"] == expected
