"""load_checkpoint refuses checkpoints whose *contents* disagree with themselves.

test_checkpoint.py flips and cuts the bytes of a file; here the file stays a perfectly
readable archive and what it holds is wrong: a weight of the wrong shape, float16 or
int32 or complex weights, a NaN or inf in one value, a missing or an extra entry, a
config whose "hidden" disagrees with the weights, a meta without the run settings a
resume reads. Hypothesis picks a valid checkpoint of a tiny model (hidden 4, 8x8 images,
every model, float32 and float64), one mutation and its target; each must raise
CheckpointError in one line naming the entry (or config / meta key), and the
unmutated file must load (the positive control).
"""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelcnn_np import checkpoint
from pixelcnn_np.adam import adam_init
from pixelcnn_np.checkpoint import CheckpointError, check_resumable, load_checkpoint, read_checkpoint
from pixelcnn_np.models import get_model, make_config

TINY = {"hidden": 4, "height": 8, "width": 8}
CONFIGS = [
    make_config("pixelcnn", n_layers=1, kernel_size=3, **TINY),
    make_config("pixelcnn", n_layers=1, kernel_size=3, pixels="8bit", n_classes=3, **TINY),
    make_config("dilated", dilations=[1, 2], **TINY),
    make_config("gated", dilations=[1, 2], **TINY),
    make_config("residual", n_blocks=1, **TINY),
    make_config("attention", n_layers=1, attention_every=1, key_channels=2, **TINY),
]


def training_meta():
    """What train_mnist.py writes into meta_json (the keys a resume reads)."""
    return {"epoch": 1, "batch": 3, "elapsed": 12.5,
            "run": {"batch_size": 64, "seed": 0, "binarize": "dynamic", "schedule": "cosine"},
            "history": {"step_loss": [[1, 0.69], [2, 0.5]],
                        "epochs": [{"epoch": 1, "step": 2, "train": 0.6, "test": 0.55, "seconds": 3.0}]}}


def valid_entries(config, dtype, seed=0):
    """The archive entries {name: array} of a valid training checkpoint of `config`."""
    rng = np.random.default_rng(seed)
    params = get_model(config).init_params(config, rng, dtype)
    params = {k: (p + 0.01 * rng.standard_normal(p.shape)).astype(dtype) for k, p in params.items()}
    opt = adam_init(params)
    opt["t"] = 5
    opt["m"] = {k: (0.1 * rng.standard_normal(p.shape)).astype(dtype) for k, p in params.items()}
    opt["v"] = {k: (0.1 * rng.random(p.shape)).astype(dtype) for k, p in params.items()}
    return checkpoint._build_entries(params, config, opt, training_meta())


BASES = [(i, dtype) for i in range(len(CONFIGS)) for dtype in (np.float32, np.float64)]
ENTRIES = {(i, dtype): valid_entries(CONFIGS[i], dtype) for i, dtype in BASES}


def write(path, entries):
    with open(path, "wb") as f:
        np.savez(f, **entries)
    return path


def json_entry(value):
    return np.array(checkpoint._to_json(value, "test"))


def config_of(entries):
    return checkpoint._json_dict(entries, "config_json", "test")


def meta_of(entries):
    return checkpoint._json_dict(entries, "meta_json", "test")


# ----------------------------------------------------------------------------------
# Mutations: each returns (new entries, the words the error message must contain)
# ----------------------------------------------------------------------------------

def array_keys(entries):
    return sorted(k for k in entries if k.startswith(("param/", "adam/m/", "adam/v/")))


def mutate_shape(draw, entries):
    """One array (param or Adam moment) gets a different shape: an axis longer or
    shorter, or one axis more or fewer."""
    key = draw(st.sampled_from(array_keys(entries)))
    a = entries[key]
    how = draw(st.sampled_from(["longer", "shorter", "extra axis", "fewer axes"]))
    if how == "longer" or (how == "shorter" and max(a.shape) < 2):
        axis = draw(st.integers(0, a.ndim - 1))
        b = np.concatenate([a, a.take([0], axis=axis)], axis=axis)
    elif how == "shorter":
        axis = draw(st.sampled_from([i for i, n in enumerate(a.shape) if n >= 2]))
        b = a.take(range(a.shape[axis] - 1), axis=axis)
    elif how == "extra axis" or a.ndim == 1 and a.size == 1:
        b = a[None]
    else:
        b = a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)
    assert b.shape != a.shape
    return dict(entries, **{key: b}), [key, "shape"]


def mutate_dtype(draw, entries):
    """One array becomes float16, int32, complex64, bool, or the other float width."""
    key = draw(st.sampled_from(array_keys(entries)))
    a = entries[key]
    other = np.float64 if a.dtype == np.float32 else np.float32
    dtype = draw(st.sampled_from([np.float16, np.int32, np.int64, np.complex64, np.bool_, other]))
    return dict(entries, **{key: a.astype(dtype)}), [key, "dtype" if dtype != other else str(np.dtype(dtype))]


def mutate_non_finite(draw, entries):
    """One value of one array becomes NaN, +inf or -inf."""
    key = draw(st.sampled_from(array_keys(entries)))
    a = entries[key].copy()
    a.reshape(-1)[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return dict(entries, **{key: a}), [key, "non-finite"]


def mutate_negative_v(draw, entries):
    """A second moment below zero (it is a mean of squares)."""
    key = draw(st.sampled_from([k for k in array_keys(entries) if k.startswith("adam/v/")]))
    a = entries[key].copy()
    a.reshape(-1)[draw(st.integers(0, a.size - 1))] = -1.0
    return dict(entries, **{key: a}), [key, "negative"]


def mutate_missing(draw, entries):
    """An entry is deleted: a parameter (alone or with its moments), a moment, adam/t,
    or one of the required entries."""
    keys = array_keys(entries) + ["adam/t", "format_version", "config_json", "meta_json"]
    key = draw(st.sampled_from(keys))
    out = {k: v for k, v in entries.items() if k != key}
    if key.startswith("param/") and draw(st.booleans()):                  # with its moments
        name = key[len("param/"):]
        out = {k: v for k, v in out.items() if k not in (f"adam/m/{name}", f"adam/v/{name}")}
    return out, [key]


def mutate_extra(draw, entries):
    """An entry the model does not have: a parameter (with or without moments) or an
    unknown top-level entry."""
    name = draw(st.sampled_from(["extra.w", "conv99.b", "out.bias"]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=4)))
    dtype = entries["param/out.b"].dtype
    where = draw(st.sampled_from(["param", "param and moments", "moment", "top level"]))
    if where == "top level":
        return dict(entries, junk=np.zeros(shape, dtype)), ["junk"]
    new = {}
    if where.startswith("param"):
        new[f"param/{name}"] = np.zeros(shape, dtype)
    if where != "param":
        new[f"adam/m/{name}"] = new[f"adam/v/{name}"] = np.zeros(shape, dtype)
    return dict(entries, **new), [name]


def mutate_config(draw, entries):
    """The config disagrees with the weights or is not a valid config."""
    config = config_of(entries)
    how = draw(st.sampled_from(["hidden", "kernel_size", "pixels", "bad value", "missing key",
                                "unknown key", "unknown model"]))
    if how == "hidden":
        config["hidden"] = draw(st.sampled_from([1, 2, 3, 5, 8, 64]))
        words = ["hidden", "shape"]
    elif how == "kernel_size":
        key = "kernel_size" if "kernel_size" in config else "first_kernel_size"
        config[key] += 2
        words = [key, "shape"]
    elif how == "pixels":
        config["pixels"] = "8bit" if config["pixels"] == "binary" else "binary"
        words = ["param/out.", "shape"]
    elif how == "bad value":
        key = draw(st.sampled_from(["hidden", "height", "width"]))
        config[key] = draw(st.sampled_from([0, -1, 2.5, "4", True, None]))
        words = [key]
    elif how == "missing key":
        key = draw(st.sampled_from(sorted(k for k in config if k != "model")))
        del config[key]
        words = [key]
    elif how == "unknown key":
        config["depth"] = 3
        words = ["depth"]
    else:
        config["model"] = "transformer"
        words = ["transformer"]
    return dict(entries, config_json=json_entry(config)), words


def mutate_meta(draw, entries):
    """The meta a resume reads is missing or malformed."""
    meta = meta_of(entries)
    how = draw(st.sampled_from(["missing", "run not an object", "negative", "history", "elapsed"]))
    if how == "missing":
        key = draw(st.sampled_from(["run", "epoch", "batch", "history"]))
        del meta[key]
    elif how == "run not an object":
        key, meta["run"] = "run", draw(st.sampled_from([None, 64, "batch 64", [64]]))
    elif how == "negative":
        key = draw(st.sampled_from(["epoch", "batch"]))
        meta[key] = draw(st.sampled_from([-1, 1.5, "3", None, True]))
    elif how == "history":
        key = "history"
        meta["history"] = draw(st.sampled_from([
            None, [], {"step_loss": []}, {"step_loss": [[1]], "epochs": []},
            {"step_loss": [[1, "nan"]], "epochs": []}, {"step_loss": [], "epochs": [{"epoch": 1}]},
        ]))
    else:
        key, meta["elapsed"] = "elapsed", draw(st.sampled_from([-1.0, "long", None]))
    return dict(entries, meta_json=json_entry(meta)), [key]


def mutate_adam_t(draw, entries):
    t = draw(st.sampled_from([np.array(-1), np.array(2.5), np.array([1, 2]), np.array("5")]))
    return dict(entries, **{"adam/t": t}), ["adam/t"]


MUTATIONS = [mutate_shape, mutate_dtype, mutate_non_finite, mutate_negative_v, mutate_missing,
             mutate_extra, mutate_config, mutate_meta, mutate_adam_t]


@st.composite
def mutated(draw):
    base = draw(st.sampled_from(BASES))
    mutation = draw(st.sampled_from(MUTATIONS))
    entries, words = mutation(draw, ENTRIES[base])
    return base, mutation.__name__, entries, words


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES, ids=lambda b: f"{CONFIGS[b[0]]['model']}{b[0]}-{np.dtype(b[1])}")
def test_valid_checkpoints_load(tmp_path, base):
    """Positive control: every unmutated checkpoint the mutations start from loads, for
    resuming too, with its arrays and meta intact."""
    entries = ENTRIES[base]
    ck = load_checkpoint(write(tmp_path / "ok.npz", entries), for_resume=True)
    assert ck.config == CONFIGS[base[0]] and ck.meta == training_meta() and ck.opt_state["t"] == 5
    for name, p in ck.params.items():
        np.testing.assert_array_equal(p, entries[f"param/{name}"])
        assert p.dtype == base[1]


@SETTINGS
@given(case=mutated())
def test_every_mutation_is_refused_naming_the_entry(tmp_path, case):
    base, how, entries, words = case
    path = write(tmp_path / "mutated.npz", entries)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, for_resume=True)
    message = str(info.value)
    assert "\n" not in message, f"{how}: not one line: {message!r}"
    assert "mutated.npz" in message
    for word in words:
        assert word in message, f"{how}: {word!r} not named in {message!r}"


@SETTINGS
@given(case=mutated())
def test_only_resume_needs_the_run_meta(tmp_path, case):
    """A mutation of the meta alone still loads for sampling and evaluation (a weights-only
    export has no run settings); every other mutation is refused either way."""
    base, how, entries, words = case
    path = write(tmp_path / "mutated.npz", entries)
    if how == "mutate_meta":
        ck = load_checkpoint(path)
        with pytest.raises(CheckpointError, match=words[0]):
            check_resumable(ck, where=str(path))
    else:
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


def test_shipped_pretrained_model_loads_and_says_it_cannot_be_resumed():
    path = Path(checkpoint.__file__).parent / "pretrained.npz"
    ck = load_checkpoint(path)
    assert ck.opt_state is None and ck.config["model"] == "pixelcnn"
    with pytest.raises(CheckpointError, match="pretrained.npz: has no Adam state.*not resumed"):
        load_checkpoint(path, for_resume=True)


def test_messages_name_the_problem(tmp_path):
    """The issue's cases, word for word, on the seed-like tiny pixelcnn."""
    base = ENTRIES[(0, np.float32)]
    cases = [
        (dict(base, **{"param/conv1.w": np.where(True, np.nan, base["param/conv1.w"])}),
         r"param/conv1.w has 144 non-finite value\(s\) \(NaN or inf\), the first at index \(0, 0, 0, 0\)"),
        (dict(base, config_json=json_entry(dict(CONFIGS[0], hidden=8))),
         r"param/conv0.w has shape \(4, 1, 3, 3\), expected \(8, 1, 3, 3\) from the config \(hidden 8,"),
        (dict(base, **{"param/out.w": base["param/out.w"].astype(np.float16)}),
         "param/out.w has dtype float16; the layers compute in float32 or float64"),
        (dict(base, **{"param/out.w": base["param/out.w"].astype(np.int32)}),
         "param/out.w has dtype int32"),
        (dict(base, meta_json=json_entry({k: v for k, v in training_meta().items() if k != "run"})),
         "meta_json has no 'run' .*it cannot be resumed"),
    ]
    for entries, pattern in cases:
        with pytest.raises(CheckpointError, match=pattern):
            load_checkpoint(write(tmp_path / "c.npz", entries), for_resume=True)


def test_read_checkpoint_still_reads_what_load_refuses(tmp_path):
    """For inspection: the archive layer returns the contents as written."""
    base = ENTRIES[(0, np.float32)]
    path = write(tmp_path / "c.npz", dict(base, config_json=json_entry(dict(CONFIGS[0], hidden=8))))
    assert read_checkpoint(path).config["hidden"] == 8
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
