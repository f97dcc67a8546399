"""Tests for pixelcnn_np.checkpoint: exact round trips, atomic saves, corrupt files.
(Contents that disagree with themselves: tests/test_checkpoint_validation.py.)"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelcnn_np import checkpoint
from pixelcnn_np.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    check_config_compatible,
    check_params_match,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from pixelcnn_np.models import get_model, make_config

# A real (tiny) model: load_checkpoint checks the parameters against the config.
CONFIG = make_config("pixelcnn", hidden=4, n_layers=1, kernel_size=7, height=8, width=8)
META = {"step": 1200, "epoch": 2, "losses": [0.31, 0.29], "note": "ünïcode ok"}
# The archive itself takes any names and shapes, 0-d arrays included (read_checkpoint).
FREE_CONFIG = {"model": "pixelcnn", "channels": 16, "layers": 3, "kernel": [7, 7], "lr": 1e-3}
FREE_SHAPES = {"conv0.w": (4, 1, 7, 7), "conv0.b": (4,), "out.w": (1, 4, 1, 1), "scale": ()}


def make_state(dtype, seed=0, shapes=None):
    """Params with dotted names and a matching Adam state, in `dtype`: CONFIG's model
    unless `shapes` are given."""
    rng = np.random.default_rng(seed)
    shapes = get_model(CONFIG).param_shapes(CONFIG) if shapes is None else shapes
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    opt_state = {
        "t": 37,
        "m": {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()},
        "v": {k: rng.random(s).astype(dtype) for k, s in shapes.items()},
    }
    return params, opt_state


def assert_arrays_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        np.testing.assert_array_equal(a[name], b[name])


def dir_listing(path):
    return sorted(os.listdir(path))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_exact(tmp_path, dtype):
    params, opt_state = make_state(dtype)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, params, CONFIG, opt_state, META)
    ckpt = load_checkpoint(path)
    assert ckpt.format_version == FORMAT_VERSION
    assert ckpt.config == CONFIG and ckpt.meta == META
    assert_arrays_equal(ckpt.params, params)
    assert ckpt.opt_state["t"] == 37 and isinstance(ckpt.opt_state["t"], int)
    assert_arrays_equal(ckpt.opt_state["m"], opt_state["m"])
    assert_arrays_equal(ckpt.opt_state["v"], opt_state["v"])
    assert dir_listing(tmp_path) == ["ckpt.npz"]  # no temp file left behind


def test_read_checkpoint_takes_any_names_and_shapes(tmp_path):
    """The archive layer (read_checkpoint) stores whatever it is given, 0-d arrays too;
    load_checkpoint refuses it, as these are not the parameters of a model."""
    params, opt_state = make_state(np.float64, shapes=FREE_SHAPES)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, params, FREE_CONFIG, opt_state, META)
    ckpt = read_checkpoint(path)
    assert ckpt.config == FREE_CONFIG and ckpt.meta == META
    assert_arrays_equal(ckpt.params, params)
    assert_arrays_equal(ckpt.opt_state["v"], opt_state["v"])
    with pytest.raises(CheckpointError, match="unknown config key"):
        load_checkpoint(path)


def test_round_trip_without_optimizer_or_meta(tmp_path):
    params, _ = make_state(np.float32)
    path = tmp_path / "sub" / "dir" / "ckpt.npz"  # parent folders are created
    save_checkpoint(path, params, CONFIG)
    ckpt = load_checkpoint(str(path))
    assert ckpt.opt_state is None and ckpt.meta == {}
    assert_arrays_equal(ckpt.params, params)


def test_loaded_arrays_outlive_the_file(tmp_path):
    params, opt_state = make_state(np.float64)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, params, CONFIG, opt_state)
    ckpt = load_checkpoint(path)
    path.unlink()
    ckpt.params["conv0.w"] += 1.0  # writable, in memory
    np.testing.assert_array_equal(ckpt.params["conv0.w"], params["conv0.w"] + 1.0)


def test_readable_with_plain_numpy(tmp_path):
    params, opt_state = make_state(np.float32)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, params, CONFIG, opt_state, META)
    with np.load(path, allow_pickle=False) as z:
        assert int(z["format_version"]) == FORMAT_VERSION
        assert json.loads(str(z["config_json"])) == CONFIG
        assert json.loads(str(z["meta_json"])) == META
        assert int(z["adam/t"]) == 37 and z["adam/t"].dtype == np.int64
        np.testing.assert_array_equal(z["param/conv0.w"], params["conv0.w"])
        np.testing.assert_array_equal(z["adam/v/out.w"], opt_state["v"]["out.w"])


# ----------------------------------------------------------------------------------
# Atomicity
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_in", ["savez", "replace"])
def test_failed_save_keeps_old_checkpoint(tmp_path, monkeypatch, fail_in):
    old_params, _ = make_state(np.float32, seed=1)
    new_params, _ = make_state(np.float32, seed=2)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, old_params, CONFIG)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        if fail_in == "savez":  # write half an archive first, then die
            args[0].write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt("interrupted mid-save")

    target = checkpoint.np if fail_in == "savez" else checkpoint.os
    monkeypatch.setattr(target, fail_in, boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, new_params, CONFIG)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["ckpt.npz"]
    assert_arrays_equal(load_checkpoint(path).params, old_params)


def test_save_validates_before_touching_disk(tmp_path):
    params, opt_state = make_state(np.float32)
    path = tmp_path / "ckpt.npz"
    bad_opt = dict(opt_state, m={k: v for k, v in opt_state["m"].items() if k != "out.w"})
    with pytest.raises(CheckpointError, match="missing: out.w"):
        save_checkpoint(path, params, CONFIG, bad_opt)
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(path, params, {"bad": object()})
    with pytest.raises(CheckpointError, match="pickle"):
        save_checkpoint(path, {"w": np.array([object()])}, CONFIG)
    assert dir_listing(tmp_path) == []


# ----------------------------------------------------------------------------------
# Loading bad files
# ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")


def write_npz(path, **entries):
    with open(path, "wb") as f:
        np.savez(f, **entries)


def test_newer_format_version(tmp_path):
    path = tmp_path / "future.npz"
    write_npz(path, format_version=np.array(FORMAT_VERSION + 1, dtype=np.int64),
              config_json=np.array("{}"), meta_json=np.array("{}"))
    with pytest.raises(CheckpointError, match="future.npz.*newer pixelcnn_np.*upgrade"):
        load_checkpoint(path)


def test_missing_required_entries(tmp_path):
    path = tmp_path / "bare.npz"
    write_npz(path, **{"param/w": np.zeros(3)})
    with pytest.raises(CheckpointError, match="bare.npz.*missing.*format_version"):
        load_checkpoint(path)


def test_optimizer_state_must_match_params(tmp_path):
    params, opt_state = make_state(np.float32)
    path = tmp_path / "ckpt.npz"
    entries = checkpoint._build_entries(params, CONFIG, opt_state, META)
    entries["adam/v/conv0.w"] = entries["adam/v/conv0.w"][:, :, :, :1]
    write_npz(path, **entries)
    with pytest.raises(CheckpointError, match=r"adam/v/conv0.w has shape \(4, 1, 7, 1\), expected \(4, 1, 7, 7\)"):
        load_checkpoint(path)
    del entries["adam/v/conv0.w"]
    write_npz(path, **entries)
    with pytest.raises(CheckpointError, match="adam/v/conv0.w is missing"):
        load_checkpoint(path)
    assert "conv0.w" not in read_checkpoint(path).opt_state["v"]       # the archive itself is readable
    del entries["adam/t"]
    write_npz(path, **entries)
    with pytest.raises(CheckpointError, match="adam/t"):
        read_checkpoint(path)


@pytest.mark.parametrize("payload", [b"", b"hello", np.lib.format.MAGIC_PREFIX + b"xx"])
def test_not_a_checkpoint(tmp_path, payload):
    path = tmp_path / "junk.npz"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="junk.npz"):
        load_checkpoint(path)


def test_plain_npy_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(CheckpointError, match="array.npz.*not an .npz"):
        load_checkpoint(path)


def valid_bytes():
    params, opt_state = make_state(np.float32)
    opt_state = {"t": 3, "m": {k: np.zeros_like(v) for k, v in params.items()},
                 "v": {k: np.ones_like(v) for k, v in params.items()}}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.npz"
        save_checkpoint(path, params, CONFIG, opt_state, META)
        return path.read_bytes()


VALID = valid_bytes()


def test_truncated_files(tmp_path):
    path = tmp_path / "cut.npz"
    for n in [1, 10, 100, len(VALID) // 3, len(VALID) // 2, len(VALID) - 22, len(VALID) - 1]:
        path.write_bytes(VALID[:n])
        with pytest.raises(CheckpointError, match="cut.npz"):
            load_checkpoint(path)
    path.write_bytes(VALID)
    assert load_checkpoint(path).opt_state["t"] == 3


# ----------------------------------------------------------------------------------
# Fuzzing: any bytes load or raise CheckpointError, never anything else
# ----------------------------------------------------------------------------------

FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def loads_or_checkpoint_error(path, raw):
    path.write_bytes(raw)
    try:
        load_checkpoint(path)
    except CheckpointError:
        pass


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path, raw):
    loads_or_checkpoint_error(tmp_path / "fuzz.npz", raw)


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete"]),
                                st.integers(0, len(VALID)), st.integers(1, 255)),
                      min_size=1, max_size=4))
def test_fuzz_mutated_checkpoint(tmp_path, edits):
    raw = bytearray(VALID)
    for op, i, byte in edits:
        i = min(i, len(raw) - 1)
        if op == "flip":
            raw[i] ^= byte
        elif op == "insert":
            raw.insert(i, byte)
        else:
            del raw[i]
    loads_or_checkpoint_error(tmp_path / "fuzz.npz", bytes(raw))


# ----------------------------------------------------------------------------------
# Compatibility checks
# ----------------------------------------------------------------------------------


def test_check_config_compatible():
    check_config_compatible(FREE_CONFIG, dict(FREE_CONFIG))
    check_config_compatible(FREE_CONFIG, dict(FREE_CONFIG, kernel=(7, 7)))  # tuple == JSON list
    check_config_compatible(FREE_CONFIG, dict(FREE_CONFIG, lr=0.5), keys=["channels", "layers"])
    with pytest.raises(CheckpointError) as info:
        check_config_compatible(FREE_CONFIG, dict(FREE_CONFIG, channels=32, lr=0.5, extra=1))
    message = str(info.value)
    assert "channels: checkpoint=16, requested=32" in message
    assert "lr: checkpoint=0.001, requested=0.5" in message
    assert "extra: checkpoint=<missing>, requested=1" in message
    assert "layers" not in message
    with pytest.raises(CheckpointError, match="layers: checkpoint=3, requested=4"):
        check_config_compatible(FREE_CONFIG, dict(FREE_CONFIG, layers=4, lr=9.0), keys=["layers"])


def test_check_params_match():
    params = {"a.w": np.zeros((2, 3)), "b.w": np.zeros(4), "c.w": np.zeros(1)}
    check_params_match(params, {"a.w": (2, 3), "b.w": (4,), "c.w": (1,)})
    with pytest.raises(CheckpointError) as info:
        check_params_match(params, {"a.w": (3, 2), "b.w": (4,), "d.w": (5,)})
    message = str(info.value)
    assert "missing: d.w (expected shape (5,))" in message
    assert "unexpected: c.w (shape (1,))" in message
    assert "wrong shape: a.w is (2, 3), expected (3, 2)" in message
    assert "b.w" not in message
