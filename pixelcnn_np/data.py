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
The same machinery (`load_idx_dataset`, `verify_checksums`, `download_files`) serves the
other datasets shipped as IDX files; datasets.py holds the registry of every dataset
(Fashion-MNIST, KMNIST, CIFAR-10, a coloured MNIST) and `load_dataset`.

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


def _remedy(missing=False, files=None, title="MNIST"):
    """The advice appended to every DataError about a file on disk (missing=True: the
    files are simply not there, so there is nothing to delete). `files` is a table like
    MNIST_FILES (None: MNIST's); `title` names the dataset."""
    files = MNIST_FILES if files is None else files
    entries = [_checksums(entry) for entry in files.values()]
    names = ", ".join(name for name, _, _ in entries)
    # A file known only by the checksum of its .gz cannot be verified once gunzipped.
    form = ("gzipped or not" if all(sha256 for _, sha256, _ in entries)
            else "as the original .gz files")
    first = ("Let the script download them (drop --no-download; they go to the folder above), "
             if missing else
             "Download it again (delete the file and re-run, which downloads what is missing), ")
    return (
        first +
        f"or point --data-dir (or the {DATA_DIR_ENV} environment variable) at a folder "
        f"containing the {title} files {names} ({form})."
    )


def _checksums(entry):
    """A file table's entry -> (file name, sha256 of the content, sha256 of the file).

    Two ways to pin a file down, either may be None:
      content sha256: of the *decompressed* bytes; a re-compressed or gunzipped copy
          still verifies. MNIST_FILES' (name, sha256) pairs are of this kind.
      file sha256: of the bytes as distributed (the .gz or .tar.gz itself), for datasets
          that publish only that; then only the original file verifies.
    Entries are either a (name, sha256) pair or a dict with keys "name", "sha256",
    "file_sha256".
    """
    if isinstance(entry, dict):
        return entry["name"], entry.get("sha256"), entry.get("file_sha256")
    name, sha256 = entry
    return name, sha256, None


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


def _decompress(raw, path, remedy=None):
    """Gunzip `raw` (bytes read from `path`), turning every gzip failure into DataError."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        remedy = _remedy() if remedy is None else remedy
        raise DataError(f"{path}: not a valid gzip file ({err}). {remedy}".rstrip()) from err


def _sha256(raw):
    """Hex sha256 of bytes."""
    return hashlib.sha256(raw).hexdigest()


def _whose(digests):
    """'MNIST's t10k-images file' if one of the hex digests is a known file of some
    dataset, else None. The registry of datasets lives in datasets.py, which imports this
    module; importing it here, only when a check has failed, avoids the import cycle."""
    from .datasets import whose_file
    return whose_file(digests)


def verify_checksums(raw, content, path, sha256=None, file_sha256=None, title="MNIST",
                     remedy=None):
    """Raise DataError unless the file matches one of its known checksums.

    Args:
        raw: the bytes of the file as read (or downloaded) from `path`.
        content: the decompressed bytes (raw itself for an uncompressed file).
        sha256: expected hex sha256 of `content`, or None.
        file_sha256: expected hex sha256 of `raw`, i.e. of the original .gz, or None.
        title: the dataset's name for the message ("MNIST", "KMNIST", ...).

    The file is accepted if sha256(raw) == file_sha256 or sha256(content) == sha256.
    The message says whose file it is when its digest belongs to another known file
    ("this is MNIST's t10k-images file, not Fashion-MNIST's"), so files of one dataset
    given as another are refused with the reason.
    """
    remedy = _remedy() if remedy is None else remedy
    raw_sha = _sha256(raw)
    if file_sha256 is not None and raw_sha == file_sha256:
        return
    content_sha = raw_sha if content is raw else _sha256(content)
    if sha256 is not None and content_sha == sha256:
        return
    owner = _whose([content_sha, raw_sha])
    if owner is None:
        reason = f"the file is corrupt or not {title}"
    elif owner.startswith(f"{title}'s "):        # the same dataset's other file
        reason = f"this is {owner}"
    else:
        reason = f"this is {owner}, not {title}'s"
    if sha256 is not None:
        found = f"sha256 of the decompressed bytes is {content_sha}, expected {sha256}"
    else:
        found = (f"sha256 of the file is {raw_sha}, expected {file_sha256} (the sha256 of "
                 f"the file as {title} distributes it: only the original file verifies, "
                 f"not a gunzipped or re-compressed copy)")
    advice = f" {remedy}" if remedy else ""
    raise DataError(f"{path}: checksum mismatch: {found}; {reason}.{advice}")


def _is_gzip(path, raw):
    """A file is gzip if its name says so or its first two bytes are the gzip magic."""
    return str(path).endswith(".gz") or raw[:2] == _GZIP_MAGIC


def _read_bytes(path, remedy):
    """The bytes of `path`, or DataError naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found. {remedy}") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err}). {remedy}") from err


def read_idx(path, expected_sha256=None, expected_file_sha256=None, title="MNIST",
             remedy=None):
    """Read an IDX file, gzipped or not, into an array.

    Args:
        path: str or Path. Gunzipped when the name ends in ".gz" or the file starts
            with the gzip magic bytes 1f 8b.
        expected_sha256: optional hex digest of the *decompressed* bytes.
        expected_file_sha256: optional hex digest of the file as stored (the .gz),
            for datasets that publish only that (see verify_checksums).
        title, remedy: the dataset's name and the advice, for messages (MNIST's).

    Returns:
        np.ndarray, as `parse_idx`.

    Raises:
        DataError naming `path` if the file is missing, not valid gzip, fails the
        checksum, or is not a well-formed IDX file.
    """
    path = Path(path)
    remedy = _remedy() if remedy is None else remedy
    raw = _read_bytes(path, remedy)
    content = _decompress(raw, path, remedy) if _is_gzip(path, raw) else raw
    if expected_sha256 is not None or expected_file_sha256 is not None:
        verify_checksums(raw, content, path, expected_sha256, expected_file_sha256,
                         title, remedy)
    try:
        return parse_idx(content)
    except DataError as err:
        raise DataError(f"{path}: {err}. {remedy}") from err


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


def _download_one(filename, sha256, data_dir, mirrors, timeout, file_sha256=None,
                  title="MNIST"):
    """Fetch one file from the first mirror that serves it intact.

    `sha256` pins the decompressed content, `file_sha256` the file as served (see
    _checksums); either may be None.

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
            # The advice on what to do comes once, after the list of URLs.
            content = _decompress(raw, url, remedy="") if sha256 is not None else raw
            verify_checksums(raw, content, url, sha256, file_sha256, title, remedy="")
            _write_atomically(Path(data_dir) / filename, raw)
            return
        # URLError and timeouts are OSErrors; a bad checksum or gzip is a DataError.
        except (OSError, ValueError, EOFError, http.client.HTTPException) as err:
            reason = str(err)      # a DataError already starts with the URL
            failures.append(f"  {reason}" if reason.startswith(url) else f"  {url}: {reason}")
    tried = "\n".join(failures) if failures else "  (no mirrors given)"
    raise DataError(
        f"could not download {filename}; tried:\n{tried}\n"
        f"Offline? Copy the {title} files into {data_dir}, or point --data-dir "
        f"(or the {DATA_DIR_ENV} environment variable) at a folder containing them."
    )


def download_files(files, data_dir, mirrors, timeout=30, title="MNIST"):
    """Download whichever files of the table `files` (like MNIST_FILES) are missing
    from `data_dir`, each verified before it is moved into place (see download_mnist)."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"{data_dir}: cannot create the folder to download {title} into ({err}). Point "
            f"--data-dir (or the {DATA_DIR_ENV} environment variable) at a writable folder, "
            f"or at one that already holds the {title} files."
        ) from err
    for entry in files.values():
        filename, sha256, file_sha256 = _checksums(entry)
        if _find_file(data_dir, filename) is None:
            _download_one(filename, sha256, data_dir, mirrors, timeout, file_sha256, title)


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
    download_files(MNIST_FILES, data_dir, mirrors, timeout, title="MNIST")


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------

SPLITS = ("train", "test")


def check_splits(splits):
    """splits as a tuple naming 'train' and/or 'test', or ValueError."""
    splits = tuple(splits)
    if not splits or any(s not in SPLITS for s in splits):
        raise ValueError(f"splits must name 'train' and/or 'test', got {splits!r}")
    return splits


def _check_split(images, labels, split, paths, remedy=None):
    """Validate one split: images (N, H, W) uint8, labels (N,) uint8 in 0..9."""
    remedy = _remedy() if remedy is None else remedy
    img_path, lbl_path = paths
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected uint8 images of shape (N, H, W), got "
            f"{images.dtype} {images.shape}. {remedy}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{lbl_path}: expected uint8 labels of shape (N,), got "
            f"{labels.dtype} {labels.shape}. {remedy}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{split} split has {len(images)} images ({img_path}) but "
            f"{len(labels)} labels ({lbl_path}). {remedy}"
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{lbl_path}: labels must be classes 0..9, found {int(labels.max())}. {remedy}"
        )


def load_idx_dataset(files, data_dir, download=True, verify=True, splits=SPLITS,
                     mirrors=(), title="MNIST"):
    """Load a dataset shipped as MNIST is (four IDX files) from one folder.

    Args:
        files: table like MNIST_FILES: "train_images", "train_labels", "test_images",
            "test_labels" -> (name, sha256) or {"name", "sha256", "file_sha256"}.
        data_dir: the folder holding the files (gzipped or not).
        download: fetch the missing files of the splits asked for from `mirrors`.
        verify: check every file against its checksums (verify_checksums).
        splits: ("train", "test") or one of them.
        title: the dataset's name, for messages.

    Returns:
        dict "{split}_images" (N, H, W) uint8, "{split}_labels" (N,) uint8 in 0..9.

    Raises:
        DataError naming the file for anything missing, corrupt or mis-shaped.
    """
    splits = check_splits(splits)
    data_dir = Path(data_dir)
    remedy = _remedy(files=files, title=title)
    wanted = {key: _checksums(v) for key, v in files.items() if key.split("_")[0] in splits}
    missing = [name for name, _, _ in wanted.values() if _find_file(data_dir, name) is None]
    if missing and download:
        download_files({key: files[key] for key in wanted}, data_dir, mirrors, title=title)
    elif missing:
        raise DataError(
            f"{data_dir}: missing {', '.join(missing)} and download=False. "
            f"{_remedy(missing=True, files=files, title=title)}"
        )

    arrays, paths = {}, {}
    for key, (filename, sha256, file_sha256) in wanted.items():
        path = _find_file(data_dir, filename)
        if path is None:  # vanished between download and now
            raise DataError(f"{data_dir / filename}: file not found. {remedy}")
        paths[key] = path
        arrays[key] = (read_idx(path, sha256, file_sha256, title, remedy) if verify
                       else read_idx(path, remedy=remedy))

    for split in splits:
        _check_split(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            split,
            (paths[f"{split}_images"], paths[f"{split}_labels"]),
            remedy,
        )
    return arrays


def load_mnist(data_dir=None, download=True, verify=True, splits=SPLITS):
    """Load MNIST as uint8 arrays, downloading missing files first if allowed.

    Args:
        data_dir: folder holding the four files (gzipped or not); None means
            $PIXELCNN_NP_DATA, else ./data (see resolve_data_dir).
        download: fetch missing files into data_dir (created if needed).
        verify: check each file's sha256 against MNIST_FILES. With verify=False any
            IDX files with the same names and layout load (e.g. Fashion-MNIST).
        splits: which splits to read, ("train", "test") or one of them: evaluating
            needs only ("test",), and then the training files need not exist (nor
            are they downloaded).

    Returns:
        dict with, for each split asked for,
            "train_images" (60000, 28, 28) uint8, pixels 0..255
            "train_labels" (60000,) uint8, digits 0..9
            "test_images"  (10000, 28, 28) uint8
            "test_labels"  (10000,) uint8

    Raises:
        DataError naming the file for anything missing, corrupt or mis-shaped.

    datasets.load_dataset("mnist", ...) is the same call; it also loads Fashion-MNIST,
    KMNIST, CIFAR-10 and a coloured MNIST.
    """
    # MNIST_FILES and MIRRORS are read at call time, so tests may replace them.
    return load_idx_dataset(MNIST_FILES, resolve_data_dir(data_dir), download, verify,
                            splits, mirrors=MIRRORS, title="MNIST")


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
