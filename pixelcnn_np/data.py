"""MNIST: reading IDX files, downloading them safely, and binarizing pixels.

MNIST ships as four gzip-compressed files in the IDX format (LeCun et al.):

    train-images-idx3-ubyte.gz   60000 images, (60000, 28, 28) uint8, pixels 0..255
    train-labels-idx1-ubyte.gz   60000 labels, (60000,)        uint8, digits 0..9
    t10k-images-idx3-ubyte.gz    10000 images, (10000, 28, 28) uint8
    t10k-labels-idx1-ubyte.gz    10000 labels, (10000,)        uint8

An IDX file is a tiny header followed by raw big-endian numbers:

    byte 0, 1    0x00 0x00            magic: always zero
    byte 2       dtype code           0x08 uint8, 0x09 int8, 0x0B int16,
                                      0x0C int32, 0x0D float32, 0x0E float64
    byte 3       ndim                 number of dimensions
    4 * ndim     dims                 each a big-endian int32
    the rest     data                 prod(dims) items, big-endian, C order

Everything that can go wrong with a file on disk (missing, truncated, not gzip, not
IDX, not MNIST) raises `DataError`, whose message names the file and says how to fix it.

PixelCNN models each pixel as a Bernoulli variable, so images are binarized before
training: `binarize` offers a fixed threshold or a fresh random draw ("dynamic").
The test set is binarized by one of two protocols (`binarize_test_set`): the fixed
threshold, or the literature's stochastic protocol, a Bernoulli(pixel/255) draw made
once with a fixed, documented seed, so that every run and every paper-style number is
measured on the same binary digits.
"""

import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file is missing, truncated, corrupt or not what it should be."""


DATA_DIR_ENV = "PIXELCNN_NP_DATA"
DEFAULT_DATA_DIR = "data"  # relative to the current working directory

# key -> (file name, sha256 of the *decompressed* bytes). Hashing the decompressed
# bytes means a re-compressed .gz, or a file someone gunzipped, still verifies.
MNIST_FILES = {
    "train_images": (
        "train-images-idx3-ubyte.gz",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train_labels": (
        "train-labels-idx1-ubyte.gz",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "test_images": (
        "t10k-images-idx3-ubyte.gz",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "test_labels": (
        "t10k-labels-idx1-ubyte.gz",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

# Tried in order; each serves the four files under the names above.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

# IDX dtype code -> big-endian NumPy dtype as stored in the file.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# NumPy 1.x arrays have at most 32 dimensions (2.x allows 64); MNIST uses 1 or 3.
_MAX_NDIM = 32

_GZIP_MAGIC = b"\x1f\x8b"


def _remedy(missing=False):
    """The advice appended to every DataError about a file on disk (missing=True: the
    files are simply not there, so there is nothing to delete)."""
    names = ", ".join(name for name, _ in MNIST_FILES.values())
    first = ("Let the script download them (drop --no-download; they go to the folder above), "
             if missing else
             "Download it again (delete the file and re-run, which downloads what is missing), ")
    return (
        first +
        f"or point --data-dir (or the {DATA_DIR_ENV} environment variable) at a folder "
        f"containing the four files {names} (gzipped or not)."
    )


# ----------------------------------------------------------------------------------
# IDX parsing
# ----------------------------------------------------------------------------------


def parse_idx(raw):
    """Parse the (already decompressed) bytes of an IDX file into an array.

    Args:
        raw: bytes, the whole file: header + data.

    Returns:
        np.ndarray of shape dims (e.g. (60000, 28, 28)) in the native-endian
        version of the stored dtype (uint8 for MNIST). A fresh, writable array.

    Raises:
        DataError for anything that is not exactly one well-formed IDX array:
        bad magic, unknown dtype code, short header, negative dims, a payload
        shorter ("truncated") or longer ("trailing bytes") than prod(dims) items.
        The expected size is computed with Python ints *before* allocating, so
        a header claiming 2**31 x 2**31 items fails fast instead of exhausting memory.
    """
    raw = bytes(raw)
    if len(raw) < 4:
        raise DataError(f"not an IDX file: only {len(raw)} bytes, the header alone needs 4")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"not an IDX file: magic bytes are {raw[0]:#04x} {raw[1]:#04x}, expected 0x00 0x00"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"{c:#04x}" for c in IDX_DTYPES)
        raise DataError(f"unknown IDX dtype code {code:#04x} (known: {known})")
    if ndim < 1 or ndim > _MAX_NDIM:
        raise DataError(f"IDX header says ndim={ndim}, expected 1..{_MAX_NDIM}")

    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(
            f"truncated IDX header: ndim={ndim} needs {header_len} bytes, file has {len(raw)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise DataError(f"IDX header has a negative dimension: {dims}")

    stored = IDX_DTYPES[code]
    # Python ints never overflow, so this is exact even for absurd headers.
    expected = math.prod(dims) * stored.itemsize
    # NumPy refuses shapes whose nonzero extents overflow intp, even with a zero dim.
    if math.prod(d for d in dims if d) * stored.itemsize > np.iinfo(np.intp).max:
        raise DataError(f"IDX dims {dims} are too large to represent")
    payload = len(raw) - header_len
    if payload < expected:
        raise DataError(
            f"truncated IDX data: dims {dims} of {stored.name} need {expected} bytes "
            f"after the header, file has {payload}"
        )
    if payload > expected:
        raise DataError(
            f"IDX file has {payload - expected} trailing bytes after the "
            f"{expected} bytes that dims {dims} of {stored.name} need"
        )

    flat = np.frombuffer(raw, dtype=stored, count=math.prod(dims), offset=header_len)
    # astype to native byte order also copies, so the result owns writable memory.
    return flat.astype(stored.newbyteorder("="), copy=True).reshape(dims)


def _decompress(raw, path):
    """Gunzip `raw` (bytes read from `path`), turning every gzip failure into DataError."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not a valid gzip file ({err}). {_remedy()}") from err


def _sha256(raw):
    """Hex sha256 of bytes."""
    return hashlib.sha256(raw).hexdigest()


def _check_sha256(raw, expected_sha256, path):
    """Raise DataError if sha256(raw) != expected_sha256; `raw` is decompressed."""
    actual = _sha256(raw)
    if actual != expected_sha256:
        raise DataError(
            f"{path}: checksum mismatch: sha256 of the decompressed bytes is {actual}, "
            f"expected {expected_sha256}; the file is corrupt or not MNIST. {_remedy()}"
        )


def _is_gzip(path, raw):
    """A file is gzip if its name says so or its first two bytes are the gzip magic."""
    return str(path).endswith(".gz") or raw[:2] == _GZIP_MAGIC


def read_idx(path, expected_sha256=None):
    """Read an IDX file, gzipped or not, into an array.

    Args:
        path: str or Path. Gunzipped when the name ends in ".gz" or the file starts
            with the gzip magic bytes 1f 8b.
        expected_sha256: optional hex digest of the *decompressed* bytes.

    Returns:
        np.ndarray, as `parse_idx`.

    Raises:
        DataError naming `path` if the file is missing, not valid gzip, fails the
        checksum, or is not a well-formed IDX file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found. {_remedy()}") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err}). {_remedy()}") from err
    if _is_gzip(path, raw):
        raw = _decompress(raw, path)
    if expected_sha256 is not None:
        _check_sha256(raw, expected_sha256, path)
    try:
        return parse_idx(raw)
    except DataError as err:
        raise DataError(f"{path}: {err}. {_remedy()}") from err


# ----------------------------------------------------------------------------------
# Finding and downloading the files
# ----------------------------------------------------------------------------------


def resolve_data_dir(data_dir=None):
    """Where MNIST lives: `data_dir` if given, else $PIXELCNN_NP_DATA, else ./data.

    Returns:
        Path (not required to exist yet).
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def _find_file(data_dir, filename):
    """Path of `filename` in `data_dir`, or of its gunzipped twin (no ".gz"); else None."""
    for candidate in (filename, filename.removesuffix(".gz")):
        path = Path(data_dir) / candidate
        if path.is_file():
            return path
    return None


def _fetch(url, timeout):
    """GET `url` and return the body as bytes. Tests replace this function."""
    request = urllib.request.Request(url, headers={"User-Agent": "pixelcnn_np"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _write_atomically(path, raw):
    """Write bytes to `path` via a temp file in the same folder and os.replace.

    A reader (or a crash) sees either no file or the complete file, never a prefix.
    The temp file is removed if anything fails.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _download_one(filename, sha256, data_dir, mirrors, timeout):
    """Fetch one file from the first mirror that serves it intact.

    Returns:
        None; the file is at data_dir / filename afterwards.

    Raises:
        DataError listing every URL tried and why it failed.
    """
    failures = []
    for base in mirrors:
        url = base + filename
        try:
            raw = _fetch(url, timeout)
            # Verify before the file ever appears under its real name.
            _check_sha256(_decompress(raw, url), sha256, url)
            _write_atomically(Path(data_dir) / filename, raw)
            return
        # URLError and timeouts are OSErrors; a bad checksum or gzip is a DataError.
        except (OSError, ValueError, EOFError, http.client.HTTPException) as err:
            failures.append(f"  {url}: {err}")
    tried = "\n".join(failures) if failures else "  (no mirrors given)"
    raise DataError(
        f"could not download {filename}; tried:\n{tried}\n"
        f"Offline? Copy the MNIST files into {data_dir}, or point --data-dir "
        f"(or the {DATA_DIR_ENV} environment variable) at a folder containing them."
    )


def download_mnist(data_dir, mirrors=None, timeout=30):
    """Download whichever of the four MNIST files are missing from `data_dir`.

    Each file is tried on the mirrors in order, verified against the sha256 in
    MNIST_FILES, and only then moved into place, so a failed or corrupt download
    leaves no partial file behind. Files already present are not touched.

    Args:
        data_dir: str or Path; created if missing.
        mirrors: list of base URLs ending in "/"; None means MIRRORS (looked up at
            call time, so a changed data.MIRRORS takes effect).
        timeout: seconds per HTTP request.

    Raises:
        DataError if some file could not be fetched intact from any mirror.
    """
    mirrors = MIRRORS if mirrors is None else mirrors
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for filename, sha256 in MNIST_FILES.values():
        if _find_file(data_dir, filename) is None:
            _download_one(filename, sha256, data_dir, mirrors, timeout)


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------


def _check_split(images, labels, split, paths):
    """Validate one split: images (N, H, W) uint8, labels (N,) uint8 in 0..9."""
    img_path, lbl_path = paths
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected uint8 images of shape (N, H, W), got "
            f"{images.dtype} {images.shape}. {_remedy()}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{lbl_path}: expected uint8 labels of shape (N,), got "
            f"{labels.dtype} {labels.shape}. {_remedy()}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{split} split has {len(images)} images ({img_path}) but "
            f"{len(labels)} labels ({lbl_path}). {_remedy()}"
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{lbl_path}: labels must be digits 0..9, found {int(labels.max())}. {_remedy()}"
        )


def load_mnist(data_dir=None, download=True, verify=True, splits=("train", "test")):
    """Load MNIST as uint8 arrays, downloading missing files first if allowed.

    Args:
        data_dir: folder holding the four files (gzipped or not); None means
            $PIXELCNN_NP_DATA, else ./data (see resolve_data_dir).
        download: fetch missing files into data_dir (created if needed).
        verify: check each file's sha256 against MNIST_FILES. With verify=False any
            IDX files with the same names and layout load (e.g. Fashion-MNIST).
        splits: which splits to read, ("train", "test") or one of them: evaluating
            needs only ("test",), and then the training files need not exist.

    Returns:
        dict with, for each split asked for,
            "train_images" (60000, 28, 28) uint8, pixels 0..255
            "train_labels" (60000,) uint8, digits 0..9
            "test_images"  (10000, 28, 28) uint8
            "test_labels"  (10000,) uint8

    Raises:
        DataError naming the file for anything missing, corrupt or mis-shaped.
    """
    splits = tuple(splits)
    if not splits or any(s not in ("train", "test") for s in splits):
        raise ValueError(f"splits must name 'train' and/or 'test', got {splits!r}")
    data_dir = resolve_data_dir(data_dir)
    wanted = {key: v for key, v in MNIST_FILES.items() if key.split("_")[0] in splits}
    missing = [name for name, _ in wanted.values() if _find_file(data_dir, name) is None]
    if missing and download:
        download_mnist(data_dir)
    elif missing:
        raise DataError(
            f"{data_dir}: missing {', '.join(missing)} and download=False. {_remedy(missing=True)}"
        )

    arrays, paths = {}, {}
    for key, (filename, sha256) in wanted.items():
        path = _find_file(data_dir, filename)
        if path is None:  # vanished between download and now
            raise DataError(f"{Path(data_dir) / filename}: file not found. {_remedy()}")
        paths[key] = path
        arrays[key] = read_idx(path, expected_sha256=sha256 if verify else None)

    for split in splits:
        _check_split(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            split,
            (paths[f"{split}_images"], paths[f"{split}_labels"]),
        )
    return arrays


# ----------------------------------------------------------------------------------
# Binarization
# ----------------------------------------------------------------------------------

BINARIZE_METHODS = ("threshold", "dynamic")

# How a test set of grey digits becomes binary digits (see `binarize_test_set`).
TEST_PROTOCOLS = ("threshold", "stochastic")

# The seed of the stochastic test protocol. Image i of draw k is binarized with
# np.random.default_rng([STOCHASTIC_TEST_SEED, k, i]): fixed forever, the same for every
# run, and independent of batching or of evaluating only the first N images.
STOCHASTIC_TEST_SEED = 20160125   # the date of the PixelRNN paper's first arXiv version


def binarize(images, method="threshold", rng=None):
    """Turn grey pixels 0..255 into binary pixels 0/1.

    Args:
        images: uint8 array (..., H, W) with values 0..255.
        method:
            "threshold": x = 1 iff images / 255 >= 0.5, i.e. iff images >= 128
                exactly, since 127/255 < 0.5 <= 128/255. Deterministic.
            "dynamic": x ~ Bernoulli(images / 255), a fresh draw per call (the
                "dynamically binarized MNIST" of the VAE / PixelCNN literature).
                Drawn exactly in integers: with u uniform on {0, ..., 254},
                P(u < k) = k / 255, so x = (u < images). No float arrays needed.
        rng: np.random.Generator; required for "dynamic", ignored otherwise.

    Returns:
        uint8 array of the same shape, values 0 or 1.

    Raises:
        TypeError if images is not uint8; ValueError for an unknown method, or
        for "dynamic" without a Generator.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"binarize expects uint8 pixels 0..255, got dtype {images.dtype}")
    if method == "threshold":
        return (images >= 128).astype(np.uint8)
    if method == "dynamic":
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "binarize(method='dynamic') needs rng=np.random.Generator "
                f"(e.g. np.random.default_rng(0)), got {type(rng).__name__}"
            )
        u = rng.integers(0, 255, size=images.shape, dtype=np.uint8)  # uniform on 0..254
        return (u < images).astype(np.uint8)
    raise ValueError(f"unknown binarize method {method!r}; expected one of {BINARIZE_METHODS}")


def binarize_test_set(images, protocol="threshold", draw=0):
    """The binary test digits of a protocol: images (N, H, W) uint8 -> (N, H, W) uint8 0/1.

    "threshold":  x = [pixel >= 128], as `binarize(images, "threshold")`.
    "stochastic": x ~ Bernoulli(pixel / 255), the protocol of the papers that report
        binarized-MNIST likelihoods (dynamically binarized test sets). Draw k of image i
        uses np.random.default_rng([STOCHASTIC_TEST_SEED, k, i]), so a number measured on
        "draw 0" means the same binary images in every run, on any machine, whatever the
        batch size or --limit. A mean over K draws uses draws 0..K-1.
    """
    if protocol == "threshold":
        return binarize(images, "threshold")
    if protocol != "stochastic":
        raise ValueError(f"unknown test protocol {protocol!r}; expected one of {TEST_PROTOCOLS}")
    if isinstance(draw, bool) or not isinstance(draw, (int, np.integer)) or draw < 0:
        raise ValueError(f"draw must be a non-negative integer, got {draw!r}")
    images = np.asarray(images)
    out = np.empty(images.shape, dtype=np.uint8)
    for i in range(len(images)):
        out[i] = binarize(images[i], "dynamic", rng=np.random.default_rng([STOCHASTIC_TEST_SEED, int(draw), i]))
    return out
