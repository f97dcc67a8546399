"""Saving and loading training state as a plain .npz file.

A checkpoint is one NumPy .npz archive (a zip of .npy files), readable with nothing but
`np.load(path, allow_pickle=False)`. Its entries:

    format_version        0-d int64, FORMAT_VERSION when written
    config_json           0-d unicode, json.dumps(config): the model/training config
    meta_json             0-d unicode, json.dumps(meta): step, epoch, losses, ...
    param/<name>          one array per parameter, e.g. "param/conv0.w" (O, C, K, K)
    adam/t                0-d int64, Adam's step count        (only if opt_state given)
    adam/m/<name>         Adam first moment,  same shape as param/<name>
    adam/v/<name>         Adam second moment, same shape as param/<name>

Writing is atomic: the archive is written to a temp file in the same folder, fsynced,
then renamed over the old one with os.replace, so a crash or Ctrl-C mid-save leaves the
previous checkpoint intact. Loading checks everything and raises `CheckpointError`
(naming the file) for a missing, truncated, corrupt, or too-new checkpoint, and for
contents that disagree with themselves (`check_consistent`: the config, each parameter's
shape, dtype and values, the Adam state); `check_resumable` adds what resuming needs.

Config and meta go through JSON, so tuples come back as lists.
"""

import json
import lzma
import os
import struct
import tempfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .models import get_model, make_config

FORMAT_VERSION = 1

_PARAM = "param/"
_ADAM_M = "adam/m/"
_ADAM_V = "adam/v/"
_ADAM_T = "adam/t"
_REQUIRED = ("format_version", "config_json", "meta_json")

# What a damaged archive can raise from inside zipfile / zlib / lzma / numpy's .npy
# header parser. All of them mean "this file is not a readable checkpoint".
_READ_ERRORS = (
    OSError,  # includes zipfile.BadZipFile's cousins, truncated reads
    EOFError,
    ValueError,  # bad .npy header, pickled data refused, bad JSON
    KeyError,
    IndexError,
    TypeError,
    NotImplementedError,  # unsupported zip compression method
    OverflowError,
    MemoryError,  # a corrupt .npy header claiming an enormous shape
    RuntimeError,
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, too new, or does not fit the current model."""


@dataclass
class Checkpoint:
    """Everything `load_checkpoint` returns.

    params:         {name: array}, e.g. {"conv0.w": (O, C, K, K) float32, ...}
    config:         dict, the config the model was trained with
    opt_state:      {"t": int, "m": {name: array}, "v": {name: array}} or None
    meta:           dict, free-form bookkeeping (step, epoch, losses, ...)
    format_version: int
    """

    params: dict
    config: dict
    opt_state: dict | None
    meta: dict
    format_version: int


# ----------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------


def _as_array(name, value):
    """np.asarray(value), refusing object arrays (they would need pickle to load)."""
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise CheckpointError(f"cannot save {name!r}: object arrays need pickle")
    return arr


def _check_names(params):
    """Parameter names must be non-empty strings."""
    for name in params:
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"parameter names must be non-empty strings, got {name!r}")


def _check_opt_state(opt_state, param_shapes, where):
    """opt_state has t >= 0 and m, v with exactly the parameters' names and shapes."""
    for key in ("t", "m", "v"):
        if key not in opt_state:
            raise CheckpointError(f"{where}: optimizer state has no {key!r}")
    t = opt_state["t"]
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
        raise CheckpointError(f"{where}: Adam step t must be an integer >= 0, got {t!r}")
    for moment in ("m", "v"):
        lines = _mismatch_lines(opt_state[moment], param_shapes)
        if lines:
            raise CheckpointError(
                f"{where}: Adam moment {moment} does not match the parameters: "
                + "; ".join(line.strip() for line in lines)
            )


def _to_json(obj, what):
    """json.dumps with a CheckpointError (not TypeError) for unserializable values."""
    try:
        return json.dumps(obj)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{what} must be JSON-serializable: {err}") from err


def _build_entries(params, config, opt_state, meta):
    """The flat {entry name: array} dict that becomes the .npz (see module docstring)."""
    _check_names(params)
    entries = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "config_json": np.array(_to_json(config, "config")),
        "meta_json": np.array(_to_json({} if meta is None else meta, "meta")),
    }
    for name, value in params.items():
        entries[_PARAM + name] = _as_array(name, value)
    if opt_state is not None:
        shapes = {name: np.shape(arr) for name, arr in params.items()}
        _check_opt_state(opt_state, shapes, "save_checkpoint")
        entries[_ADAM_T] = np.array(int(opt_state["t"]), dtype=np.int64)
        for name in params:
            entries[_ADAM_M + name] = _as_array(name, opt_state["m"][name])
            entries[_ADAM_V + name] = _as_array(name, opt_state["v"][name])
    return entries


def save_checkpoint(path, params, config, opt_state=None, meta=None):
    """Write params (+ optimizer state, config, meta) to `path` atomically.

    Args:
        path: str or Path of the .npz to write; its folder is created if missing.
        params: {name: array}, names like "conv0.w".
        config: JSON-serializable dict describing the model / run.
        opt_state: None or {"t": int, "m": {name: array}, "v": {name: array}},
            with m and v covering exactly the names and shapes in params.
        meta: None or a JSON-serializable dict (step, epoch, losses, ...).

    If anything fails, the temp file is removed and an existing checkpoint at `path`
    is left exactly as it was.
    """
    path = Path(path)
    entries = _build_entries(params, config, opt_state, meta)  # validate before touching disk
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------


def _read_npz(path):
    """Read every entry of the archive at `path` into memory: {entry name: array}."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy array
            raise CheckpointError(f"{path}: not a checkpoint (a single .npy array, not an .npz)")
        with archive:  # reading each entry copies it into memory before the file closes
            entries = {name: archive[name] for name in archive.files}
    except FileNotFoundError as err:
        raise CheckpointError(f"no checkpoint at {path}") from err
    except CheckpointError:
        raise
    except _READ_ERRORS as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint, the file is truncated or corrupt "
            f"({type(err).__name__}: {err})"
        ) from err
    for name, value in entries.items():
        if not isinstance(value, np.ndarray):  # a zip member that is not a .npy
            raise CheckpointError(f"{path}: entry {name!r} is not an array")
    return entries


def _scalar_int(entries, name, path):
    """The 0-d integer entry `name` as a Python int."""
    arr = entries[name]
    if arr.shape != () or arr.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: {name} must be a 0-d integer, got {arr.dtype} {arr.shape}")
    return int(arr)


def _json_dict(entries, name, path):
    """Decode the 0-d unicode entry `name` as a JSON object (dict)."""
    arr = entries[name]
    if arr.shape != () or arr.dtype.kind != "U":
        raise CheckpointError(f"{path}: {name} must be a 0-d string, got {arr.dtype} {arr.shape}")
    try:
        value = json.loads(str(arr))
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: {name} is not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: {name} must hold a JSON object, got {type(value).__name__}")
    return value


def _split_entries(entries, path):
    """Sort entry names into params, adam m, adam v; refuse anything unrecognised."""
    params, m, v = {}, {}, {}
    for name, arr in entries.items():
        if name in _REQUIRED or name == _ADAM_T:
            continue
        for prefix, into in ((_PARAM, params), (_ADAM_M, m), (_ADAM_V, v)):
            if name.startswith(prefix) and len(name) > len(prefix):
                into[name[len(prefix):]] = arr
                break
        else:
            raise CheckpointError(f"{path}: unexpected entry {name!r}")
    for name, arr in params.items():
        if arr.dtype.kind not in "biufc":
            raise CheckpointError(f"{path}: parameter {name!r} has non-numeric dtype {arr.dtype}")
    return params, m, v


def read_checkpoint(path):
    """Read a checkpoint as it was written, checking the archive but not the model.

    Everything `load_checkpoint` checks about the *file*: it exists, is an .npz, is not
    truncated or corrupt, is not from a newer pixelcnn_np, has its required entries (and
    adam/t, if it has Adam moments). Not checked: whether its contents agree with
    themselves, the config with the parameters, the parameters with the Adam moments
    (`check_consistent`). Use it to inspect a checkpoint that `load_checkpoint` refuses.

    Returns a Checkpoint with in-memory arrays (the file is closed afterwards).
    Raises CheckpointError naming `path`.
    """
    path = Path(path)
    entries = _read_npz(path)

    missing = [name for name in _REQUIRED if name not in entries]
    if missing:
        raise CheckpointError(f"{path}: not a pixelcnn_np checkpoint, missing {missing}")
    version = _scalar_int(entries, "format_version", path)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} was written by a newer pixelcnn_np "
            f"(this one reads up to {FORMAT_VERSION}); upgrade pixelcnn_np to load it"
        )
    if version < 1:
        raise CheckpointError(f"{path}: invalid format version {version}")
    config = _json_dict(entries, "config_json", path)
    meta = _json_dict(entries, "meta_json", path)
    params, m, v = _split_entries(entries, path)

    opt_state = None
    if _ADAM_T in entries or m or v:
        if _ADAM_T not in entries:
            raise CheckpointError(f"{path}: has Adam moments but no {_ADAM_T}")
        opt_state = {"t": _scalar_int(entries, _ADAM_T, path), "m": m, "v": v}

    return Checkpoint(
        params=params, config=config, opt_state=opt_state, meta=meta, format_version=version
    )


def load_checkpoint(path, *, for_resume=False):
    """Read a checkpoint written by `save_checkpoint` and check that it is usable.

    Args:
        path: str or Path.
        for_resume: also require what resuming training needs (`check_resumable`):
            Adam state and the meta keys "run", "epoch", "batch", "history". Leave it
            False for sampling and evaluation: a weights-only export such as
            pixelcnn_np/pretrained.npz has neither.

    Returns:
        Checkpoint with in-memory arrays (the file is closed afterwards).

    Raises:
        CheckpointError, one line naming `path` and the offending entry, if the file
        is missing, not an .npz, truncated or corrupt, written by a newer pixelcnn_np,
        or its contents disagree with themselves (`check_consistent`: the config, each
        parameter's shape, dtype and values, the Adam state), or (for_resume) it lacks
        what a resume reads.
    """
    ckpt = read_checkpoint(path)
    check_consistent(ckpt, where=str(path))
    if for_resume:
        check_resumable(ckpt, where=str(path))
    return ckpt


# ----------------------------------------------------------------------------------
# Contents that agree with themselves
# ----------------------------------------------------------------------------------
# A checkpoint can be a perfectly readable archive and still be useless: a NaN in one
# weight (sampling then draws black images, evaluation prints nan), a config whose
# "hidden" disagrees with the weights (a broadcast error deep in the forward pass),
# float16 or integer weights (a TypeError in the first layer), a meta without the run
# settings (a KeyError on --resume). Each check below turns one of these into a
# CheckpointError that names the entry, before any script uses the checkpoint.

PARAM_DTYPES = (np.float32, np.float64)     # what the layers compute in (validation.py)

_RESUME_META = {
    "run": "the run settings a resume compares (batch size, seed, binarization, schedule)",
    "epoch": "the epoch to resume in",
    "batch": "the batch of that epoch to resume at",
    "history": "the loss history the run goes on appending to",
}
_EPOCH_ROW_KEYS = ("epoch", "step", "train", "test", "seconds")   # one row of history["epochs"]


def _checked_config(config, where):
    """The config must be one `make_config` builds: a known model, no unknown keys,
    valid values, and every key present (a missing key would be a KeyError later).
    Returns param_shapes(config)."""
    overrides = {k: v for k, v in config.items() if k != "model"}
    try:
        complete = make_config(config.get("model"), **overrides)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: config_json is not a valid config: {err}") from err
    for key, value in complete.items():
        if key not in config:
            raise CheckpointError(f"{where}: config_json has no {key!r} (the model needs it; "
                                  f"its default is {value!r})")
        if config[key] is None:
            raise CheckpointError(f"{where}: config_json {key!r} is null")
    try:
        return get_model(config).param_shapes(config)
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{where}: config_json is not a valid config: {err!r}") from err


def _describe_config(config):
    """'hidden 8, n_layers 2, ...': the config in a message."""
    return ", ".join(f"{k} {v}" for k, v in config.items() if k != "model")


def _check_arrays(arrays, prefix, shapes, dtype, where, source):
    """arrays {name: array} must have exactly the names of `shapes`, each its shape, the
    one `dtype` (None: float32 or float64, whichever most of them have) and finite values.
    Entries are named prefix + name in messages ("param/conv0.w"); `source` says where
    the expected names and shapes come from. Returns the dtype."""
    for name in shapes:
        if name not in arrays:
            raise CheckpointError(f"{where}: {prefix}{name} is missing ({len(arrays)} stored, "
                                  f"{len(shapes)} expected from {source})")
    for name in arrays:
        if name not in shapes:
            raise CheckpointError(f"{where}: {prefix}{name} is not among the {len(shapes)} parameters "
                                  f"expected from {source}")
    for name, shape in shapes.items():
        if arrays[name].shape != tuple(shape):
            raise CheckpointError(f"{where}: {prefix}{name} has shape {arrays[name].shape}, "
                                  f"expected {tuple(shape)} from {source}")
    for name in shapes:
        if arrays[name].dtype.type not in PARAM_DTYPES:
            raise CheckpointError(f"{where}: {prefix}{name} has dtype {arrays[name].dtype}; the layers "
                                  f"compute in float32 or float64 (convert with .astype(np.float32))")
    if dtype is None:      # the dtype most parameters have, so the odd one out is the one named
        dtype = Counter(arrays[name].dtype for name in shapes).most_common(1)[0][0]
    for name in shapes:
        if arrays[name].dtype != dtype:
            raise CheckpointError(f"{where}: {prefix}{name} is {arrays[name].dtype} but the parameters "
                                  f"are {dtype}; a checkpoint holds one dtype")
    for name in shapes:
        finite = np.isfinite(arrays[name])
        if not finite.all():
            bad = finite.size - int(np.count_nonzero(finite))
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise CheckpointError(f"{where}: {prefix}{name} has {bad} non-finite value(s) (NaN or inf), "
                                  f"the first at index {first}")
    return dtype


def check_consistent(ckpt, where="checkpoint"):
    """Raise CheckpointError unless the checkpoint's contents agree with themselves:

    * config: a known model, no unknown keys, valid values, every key the model reads;
    * params: exactly the names of `get_model(config).param_shapes(config)`, each with
      its shape; all float32 or all float64; every value finite;
    * opt_state (if any): t an integer >= 0; m and v with the params' names, shapes and
      dtype, finite, and v >= 0 (it is a running mean of squared gradients).

    Each message is one line naming `where` and the entry, e.g. "ckpt.npz: param/conv1.w
    has shape (4, 4, 3, 3), expected (8, 8, 3, 3) from the config (hidden 8, n_layers 2, ...)".
    """
    shapes = _checked_config(ckpt.config, where)
    dtype = _check_arrays(ckpt.params, _PARAM, shapes, None, where,
                          source=f"the config ({_describe_config(ckpt.config)})")
    if ckpt.opt_state is None:
        return
    t = ckpt.opt_state["t"]
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
        raise CheckpointError(f"{where}: {_ADAM_T} (Adam's step count) must be an integer >= 0, got {t!r}")
    for prefix, moment in ((_ADAM_M, ckpt.opt_state["m"]), (_ADAM_V, ckpt.opt_state["v"])):
        _check_arrays(moment, prefix, shapes, dtype, where, source="the parameters")
    for name, v in ckpt.opt_state["v"].items():
        if (v < 0).any():
            raise CheckpointError(f"{where}: {_ADAM_V}{name} has negative values; Adam's second moment "
                                  f"is a running mean of squared gradients")


def _is_int(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def check_resumable(ckpt, where="checkpoint"):
    """Raise CheckpointError unless training can resume from `ckpt`: it has Adam state
    and the meta that train_mnist.py / train_torch.py read back (`_RESUME_META`):

        meta["run"]      a dict (the run settings)
        meta["epoch"]    int >= 0          meta["batch"]   int >= 0
        meta["history"]  {"step_loss": [[step, loss], ...], "epochs": [{epoch, step, train,
                          test, seconds}, ...]}, finite numbers
        meta["elapsed"]  optional, a number >= 0

    Call it after `load_checkpoint` (or use load_checkpoint(path, for_resume=True)).
    """
    if ckpt.opt_state is None:
        raise CheckpointError(f"{where}: has no Adam state (adam/t, adam/m, adam/v): a weights-only "
                              f"export can be sampled and evaluated, not resumed")
    meta = ckpt.meta
    for key, what in _RESUME_META.items():
        if key not in meta:
            raise CheckpointError(f"{where}: meta_json has no {key!r} ({what}); it cannot be resumed")
    if not isinstance(meta["run"], dict):
        raise CheckpointError(f"{where}: meta_json 'run' must be an object, got {meta['run']!r}")
    for key in ("epoch", "batch"):
        if not _is_int(meta[key]):
            raise CheckpointError(f"{where}: meta_json {key!r} must be an integer >= 0, got {meta[key]!r}")
    if "elapsed" in meta and not (_is_number(meta["elapsed"]) and meta["elapsed"] >= 0):
        raise CheckpointError(f"{where}: meta_json 'elapsed' must be a number >= 0, got {meta['elapsed']!r}")
    history = meta["history"]
    if not isinstance(history, dict) or not isinstance(history.get("step_loss"), list) \
            or not isinstance(history.get("epochs"), list):
        raise CheckpointError(f"{where}: meta_json 'history' must be an object with lists 'step_loss' "
                              f"and 'epochs'")
    for i, row in enumerate(history["step_loss"]):
        if not (isinstance(row, list) and len(row) == 2 and _is_int(row[0], 1) and _is_number(row[1])):
            raise CheckpointError(f"{where}: meta_json 'history' step_loss[{i}] must be [step, loss] "
                                  f"with finite numbers, got {row!r}")
    for i, row in enumerate(history["epochs"]):
        if not (isinstance(row, dict) and all(_is_number(row.get(k)) for k in _EPOCH_ROW_KEYS)):
            raise CheckpointError(f"{where}: meta_json 'history' epochs[{i}] must have finite numbers "
                                  f"{list(_EPOCH_ROW_KEYS)}, got {row!r}")


# ----------------------------------------------------------------------------------
# Compatibility checks used before resuming
# ----------------------------------------------------------------------------------

_MISSING = "<missing>"


def _normalize(value):
    """Compare values as they would come back from JSON, so (3, 3) equals [3, 3]."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def check_config_compatible(saved, current, keys=None):
    """Refuse to resume when the checkpoint's config differs from the requested one.

    Args:
        saved: config dict stored in the checkpoint.
        current: config dict requested now.
        keys: iterable of keys to compare (e.g. the architecture keys); None compares
            every key in either dict. A key absent on one side shows as <missing>.

    Raises:
        CheckpointError with one line per differing key:
            "key: checkpoint=X, requested=Y"
    """
    keys = sorted(set(saved) | set(current), key=str) if keys is None else list(keys)
    lines = []
    for key in keys:
        a = _normalize(saved[key]) if key in saved else _MISSING
        b = _normalize(current[key]) if key in current else _MISSING
        if a != b:
            a_text = a if a is _MISSING else repr(a)
            b_text = b if b is _MISSING else repr(b)
            lines.append(f"  {key}: checkpoint={a_text}, requested={b_text}")
    if lines:
        raise CheckpointError(
            "checkpoint config differs from the requested config:\n" + "\n".join(lines)
        )


def check_params_match(params, expected_shapes):
    """Check that `params` has exactly the expected names and shapes.

    Args:
        params: {name: array or shape tuple}.
        expected_shapes: {name: shape tuple}, e.g. from a freshly initialised model.

    Raises:
        CheckpointError listing missing, unexpected and wrong-shape parameters.
    """
    lines = _mismatch_lines(params, expected_shapes)
    if lines:
        raise CheckpointError("parameters do not match the model:\n" + "\n".join(lines))


def _mismatch_lines(params, expected_shapes):
    """One line per missing, unexpected or wrong-shape name; [] when all match."""
    lines = []
    for name in sorted(set(expected_shapes) - set(params), key=str):
        lines.append(f"  missing: {name} (expected shape {tuple(expected_shapes[name])})")
    for name in sorted(set(params) - set(expected_shapes), key=str):
        lines.append(f"  unexpected: {name} (shape {_shape(params[name])})")
    for name in sorted(set(params) & set(expected_shapes), key=str):
        got, want = _shape(params[name]), tuple(expected_shapes[name])
        if got != want:
            lines.append(f"  wrong shape: {name} is {got}, expected {want}")
    return lines


def _shape(value):
    """Shape of an array, or the tuple itself if `value` is already a shape."""
    if isinstance(value, tuple):
        return value
    return tuple(np.shape(value))
