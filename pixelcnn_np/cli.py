"""Command-line plumbing shared by the example scripts.

Every script meets its user through the same few pieces, so every failure reads the same:
one line on stderr, no traceback, and an exit status a shell can test.

    2   a usage error (a bad flag, an output that cannot be written, a bad checkpoint)
    1   the data (MNIST missing or damaged) or the training (a NaN loss)
    130 interrupted (Ctrl-C or SIGTERM), what was done saved

  OneLineParser          argparse whose errors are one line; `check_output` refuses,
                         before any work, an output the script could not write
  positive_int, ...      argument types whose message names the bad value
  fail                   end the script with `error: ...` and an exit status
  load_data, split       MNIST, or a one-line error; a split's images and (for a
                         class-conditional model) its labels
  open_checkpoint        a checkpoint, or a one-line error
  atomic_write           replace a file only once its new contents are complete
"""

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

PRETRAINED = Path(__file__).resolve().parent / "pretrained.npz"   # the model the package ships

# The shipped models by name (sample.py / evaluate.py --checkpoint NAME): the best of each
# test protocol, each file's meta saying how it was trained and what it measured
# (export_pretrained.py). Only the files present in the package are offered.
PRETRAINED_MODELS = {
    "seed": ("pretrained.npz", "the seed PixelCNN, 10 epochs, binary digits thresholded at 0.5"),
    "dynamic": ("pretrained_dynamic.npz", "the dilated PixelCNN trained on dynamically binarized digits, "
                                          "measured under the papers' stochastic test protocol"),
    "8bit": ("pretrained_8bit.npz", "8-bit MNIST, 256-way softmax"),
}


def pretrained_models():
    """{name: (path, description)} of the shipped models whose file is present."""
    here = PRETRAINED.parent
    return {name: (here / f, text) for name, (f, text) in PRETRAINED_MODELS.items() if (here / f).exists()}


def checkpoint_path(text):
    """--checkpoint's value: a shipped model's name (`pretrained_models`), else a path."""
    if text is None:
        return PRETRAINED
    shipped = pretrained_models()
    return shipped[text][0] if text in shipped else Path(text)


def checkpoint_help():
    names = ", ".join(f"{n} ({t})" for n, (_, t) in pretrained_models().items())
    return f"a checkpoint.npz, or the name of a shipped model: {names} (default: seed)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error prints one line (`prog: error: ...`) and exits 2,
    without the usage block; `--help` still shows everything."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        """Parse, then check the environment settings the package reads (a bad
        PIXELCNN_NP_THREADS is a usage error now, not a traceback mid-run)."""
        from .threads import n_threads
        parsed = super().parse_args(args, namespace)
        try:
            n_threads()
        except ValueError as e:
            self.error(str(e))
        return parsed

    def check_output(self, flag, path, folder=False):
        """A usage error unless the script can write `path` (given as `flag`): a folder
        to write files in (folder=True) or a file; missing folders count as writable
        when they can be created. Call it before any work, so that an hour of training
        or sampling is never lost to a path that was wrong from the start. None: no
        output asked for, nothing to check."""
        problem = None if path is None else output_problem(path, folder)
        if problem:
            self.error(f"{flag} {path} {problem}")


def output_problem(path, folder=False):
    """Why `path` cannot be written, in a few words that follow it ("is a file, not a
    folder"), or None when it can.

    folder=True: `path` is a folder the script writes files into; else a file. Either
    may not exist yet (the script creates it and its missing parents). The test is
    real: a file is created and removed in the nearest folder that exists, so a
    read-only file system, a folder of another user, or root on a read-only mount all
    answer as they would when the script writes.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        return "is a file, not a folder"
    if not folder and path.is_dir():
        return "is a folder; name a file in it"
    existing = Path(os.path.abspath(path if folder else path.parent))
    while not existing.exists():                       # the nearest folder that exists
        existing = existing.parent
    if not existing.is_dir():
        return f"lies under {existing}, which is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-")
    except OSError as e:
        return f"cannot be written ({existing}: {e.strerror or e})"
    os.close(fd)
    os.remove(probe)
    return None


def fail(message, code):
    """End the script: `error: message` on stderr, exit status `code`."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def load_data(data_dir=None, download=True, splits=("train", "test"), dataset="mnist"):
    """datasets.load_dataset (MNIST by default), or end the script with its one-line
    DataError (exit 1)."""
    from .data import DataError
    from .datasets import load_dataset
    try:
        return load_dataset(dataset, data_dir, download=download, splits=splits)
    except DataError as e:
        fail(e, 1)


def split(data, name, config, limit=None):
    """(images (N, H, W) uint8, labels (N,) int64 or None): the first `limit` (None:
    all) images of split `name` ("train" or "test") of load_mnist's dict, with their
    labels when `config` is class-conditional (the model is then p(x | y)), else None.
    Images of another shape than the model's ((H, W) grey, (3, H, W) colour) end the
    script in one line: a grey model cannot read colour images, nor a 28x28 one 32x32."""
    from .models import describe, image_shape
    images = data[f"{name}_images"][:limit]
    if images.shape[1:] != image_shape(config):
        fail(f"the {name} images have shape {images.shape[1:]}, but the model ({describe(config)}) reads "
             f"{image_shape(config)}: choose the dataset it was trained on (--dataset)", 2)
    labels = data[f"{name}_labels"][:limit].astype(np.int64) if config.get("n_classes", 0) else None
    return images, labels


def open_checkpoint(parser, path, hint="", for_resume=False):
    """checkpoint.load_checkpoint of a model this package has, or end the script: a usage
    error for a missing file (`hint` appended), a one-line CheckpointError otherwise
    (exit 2 both)."""
    from .checkpoint import CheckpointError, load_checkpoint
    from .models import get_model
    if not Path(path).exists():
        parser.error(f"no checkpoint at {path}{hint}")
    try:
        ck = load_checkpoint(path, for_resume=for_resume)
        get_model(ck.config)                       # an unknown model name is a clear error here
    except (CheckpointError, ValueError) as e:
        fail(e, 2)
    return ck


def atomic_write(path, write, binary=False):
    """Call write(f) on a temporary file beside `path`, then rename it over `path`: a
    crash or Ctrl-C mid-write leaves the old file whole. Missing folders are created."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, 0o644)                       # mkstemp makes files 0600; these are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def npy_path(path):
    """The file np.save(path, ...) writes: `path`, with ".npy" added if it lacks it (None: None)."""
    if path is None:
        return None
    return str(path) if str(path).endswith(".npy") else f"{path}.npy"


def save_npy(path, array):
    """np.save, atomically, into folders created if missing; returns the path written."""
    path = npy_path(path)
    atomic_write(path, lambda f: np.save(f, array), binary=True)
    return path


# ----------------------------------------------------------------------------------
# Argument types: a bad value is a one-line usage error naming the flag
# ----------------------------------------------------------------------------------

def _int_at_least(text, low, what):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
    if v < low:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {v}")
    return v


def positive_int(text):
    return _int_at_least(text, 1, "positive")


def non_negative_int(text):
    return _int_at_least(text, 0, "non-negative")


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return v


def odd_int(text):
    v = positive_int(text)
    if v % 2 == 0:
        raise argparse.ArgumentTypeError(f"kernel size must be odd, got {v}")
    return v


def int_list(text, low, example):
    """'1,2,4' -> [1, 2, 4], every entry >= low; `example` shows the form in the message."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < low:
        raise argparse.ArgumentTypeError(f"expected comma-separated {example}, got {text!r}")
    return values


def check_memory(parser, estimate, reduce):
    """A one-line usage error (exit 2) before the work when `estimate` (a
    memory.MemoryEstimate) cannot fit in the memory this machine has available now."""
    from .memory import MemoryBudgetError, check_fits
    try:
        check_fits(estimate, estimate.what, reduce=reduce)
    except MemoryBudgetError as e:
        parser.error(str(e))
