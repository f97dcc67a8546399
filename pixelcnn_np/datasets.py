"""Datasets beyond MNIST: one loader, each dataset with its own files and checksums.

    load_dataset(name, data_dir=None, download=True, splits=("train", "test"), verify=True)

returns, for each split asked for, "{split}_images" and "{split}_labels" (uint8):

    name               images (train / test)                 labels       pixels
    mnist              (60000, 28, 28) / (10000, 28, 28)     0..9 digits  grey 0..255
    fashion-mnist      (60000, 28, 28) / (10000, 28, 28)     0..9 kinds   grey 0..255
    kmnist             (60000, 28, 28) / (10000, 28, 28)     0..9 kana    grey 0..255
    cifar-10           (50000, 3, 32, 32) / (10000, 3, 32, 32)  0..9      R, G, B 0..255
    colour-mnist-v1    (60000, 3, 28, 28) / (10000, 3, 28, 28)  0..9      R, G, B 0..255

Grey images are (N, H, W), as MNIST always was; colour images are channels-first
(N, 3, H, W), channel 0 = R, 1 = G, 2 = B: the order the models take, (N, C, H, W),
and the order CIFAR-10 stores its bytes, so no transpose is needed on either side
(np.moveaxis(images, 1, -1) gives (N, H, W, 3) for plotting).

Where the files are. `data_dir` (else $PIXELCNN_NP_DATA, else ./data) is the folder
MNIST has always lived in, its four files directly inside. Every other dataset lives in
its own subfolder, data_dir/<folder> ("fashion-mnist", "kmnist", "cifar-10"), where
downloads go. As a convenience, a folder that holds the dataset's files directly (say
--data-dir /usr/share/datasets/fashion-mnist, where `apt-get install
dataset-fashion-mnist` puts Fashion-MNIST) is used as it is, unless its files are
recognisably another dataset's: MNIST, Fashion-MNIST and KMNIST share their file names,
and data/ holds MNIST's. The coloured MNIST is built from MNIST, so it reads MNIST's
folder.

Checksums (see each table for where its values come from). A file is accepted when the
sha256 of its decompressed content is the one recorded (so a re-compressed or gunzipped
copy verifies: MNIST, Fashion-MNIST), or when the sha256 of the file itself is the one
of the file as distributed (KMNIST, whose decompressed checksums are published nowhere
we could check, and CIFAR-10's archive). A file whose checksum is another known file's
is refused with the reason: "this is MNIST's t10k-images file, not Fashion-MNIST's".
Every problem with a file raises data.DataError naming the file and saying how to fix it.
"""

import gzip
import hashlib
import io
import tarfile
import zlib
from pathlib import Path

import numpy as np

from . import data
from .data import SPLITS, DataError, check_splits, resolve_data_dir

# ----------------------------------------------------------------------------------
# The file tables
# ----------------------------------------------------------------------------------

# Fashion-MNIST (Zalando Research, MIT licence): MNIST's format and file names.
# sha256 of the decompressed bytes, computed from the files of the Debian package
# dataset-fashion-mnist (0.0~git20200523.55506a9-1) and equal to the values other projects
# derived from the original .gz files. Debian re-compressed the .gz files, so their md5s
# differ from the ones Zalando publishes for the originals, which are (README, "Get the data"):
#   train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d   train-labels 25c81989df183df01b3e8a0aad5dffbe
#   t10k-images  bef4ecab320f06d8554ea6380940ec79   t10k-labels  bb300cfdad3c16e7a12a480ee83cd310
# Checking the decompressed content accepts both.
FASHION_MNIST_FILES = {
    "train_images": {"name": "train-images-idx3-ubyte.gz",
                     "sha256": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
    "train_labels": {"name": "train-labels-idx1-ubyte.gz",
                     "sha256": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
    "test_images": {"name": "t10k-images-idx3-ubyte.gz",
                    "sha256": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
    "test_labels": {"name": "t10k-labels-idx1-ubyte.gz",
                    "sha256": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
}
FASHION_MNIST_MIRRORS = [
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]

# KMNIST, Kuzushiji-MNIST (ROIS-CODH, CC BY-SA 4.0): MNIST's format and file names.
# Not available offline here, so these could not be computed from the files. Only
# checksums of the .gz files as distributed are published: the sha256s below are the ones
# TensorFlow Datasets and torchvision-ruby record (they agree); the md5s torchvision
# records, not checked here, are
#   train-images bdb82020997e1d708af4cf47b453dcf7   train-labels e144d726b3acfaa3e44228e80efcd344
#   t10k-images  5c965bf0a639b31b8f53240b1b52f4d7   t10k-labels  7320c461ea6c1c855c0b718fb2a4b134
# A gunzipped or re-compressed KMNIST file therefore cannot be verified: keep the .gz.
KMNIST_FILES = {
    "train_images": {"name": "train-images-idx3-ubyte.gz", "file_sha256":
                     "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"},
    "train_labels": {"name": "train-labels-idx1-ubyte.gz", "file_sha256":
                     "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"},
    "test_images": {"name": "t10k-images-idx3-ubyte.gz", "file_sha256":
                    "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"},
    "test_labels": {"name": "t10k-labels-idx1-ubyte.gz", "file_sha256":
                    "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"},
}
KMNIST_MIRRORS = [
    "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
]

# CIFAR-10 (Krizhevsky 2009), its binary version: one archive of six fixed-size-record
# files. md5 c32a1d4ab5d03f1284b67883e8d87530 is the one the dataset's page publishes; the
# sha256 below is the one several independent projects record for that same archive
# (170,052,171 bytes). The pickled "Python version" (cifar-10-python.tar.gz) is never read:
# unpickling a file can run code. The extracted .bin files have no published checksums;
# they are checked by size, record count and labels.
CIFAR10_FILES = {
    "archive": {"name": "cifar-10-binary.tar.gz", "file_sha256":
                "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"},
}
CIFAR10_PYTHON_ARCHIVE = {"name": "cifar-10-python.tar.gz", "file_sha256":
                          "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}
CIFAR10_MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
CIFAR10_FOLDER = "cifar-10-batches-bin"          # the folder inside the archive
CIFAR10_BATCHES = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
# One record: 1 label byte (0..9), then 3072 pixel bytes: the 1024 R values of the 32x32
# image in row-major order, then its 1024 G values, then its 1024 B values.
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_RECORDS_PER_FILE = 10000                 # looked up at call time (tests shrink it)

# The coloured MNIST (see colour_mnist): its seed and the sha256 of the arrays it builds
# from the real MNIST, so that the recipe can never change silently.
COLOUR_MNIST_SEED = 21                           # the issue that asked for it
COLOUR_MNIST_SHA256 = {
    "train_images": "09f04d5d0c33767070c384203bb5001423136bf620e4fb3453ba03c589d55c18",
    "test_images": "8586b7189e1ab433f479782bdf100fade1fb92e7d39ba4e152a4ed68d754f28a",
}

# ----------------------------------------------------------------------------------
# The registry: one entry of plain facts per dataset
# ----------------------------------------------------------------------------------

DATASETS = {
    "mnist": {
        "title": "MNIST",
        "description": "handwritten digits 0..9 (LeCun, Cortes, Burges), 28x28 grey",
        "format": "idx", "folder": "",           # directly in data_dir, as always
        "files": data.MNIST_FILES, "mirrors": data.MIRRORS,
        "shape": (28, 28), "channels": 1, "classes": 10,
        "sizes": {"train": 60000, "test": 10000},
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "description": "Zalando's article images, 10 kinds of clothing, 28x28 grey",
        "format": "idx", "folder": "fashion-mnist",
        "files": FASHION_MNIST_FILES, "mirrors": FASHION_MNIST_MIRRORS,
        "shape": (28, 28), "channels": 1, "classes": 10,
        "sizes": {"train": 60000, "test": 10000},
    },
    "kmnist": {
        "title": "KMNIST",
        "description": "Kuzushiji-MNIST: 10 cursive Japanese kana (ROIS-CODH), 28x28 grey",
        "format": "idx", "folder": "kmnist",
        "files": KMNIST_FILES, "mirrors": KMNIST_MIRRORS,
        "shape": (28, 28), "channels": 1, "classes": 10,
        "sizes": {"train": 60000, "test": 10000},
    },
    "cifar-10": {
        "title": "CIFAR-10",
        "description": "tiny natural images, 10 classes (Krizhevsky 2009), 32x32 RGB, "
                       "binary version",
        "format": "cifar10-binary", "folder": "cifar-10",
        "files": CIFAR10_FILES, "mirrors": CIFAR10_MIRRORS,
        "shape": (32, 32), "channels": 3, "classes": 10,
        "sizes": {"train": 50000, "test": 10000},
    },
    "colour-mnist-v1": {
        "title": "colour-mnist-v1",
        "description": "MNIST digits in a random colour on a random darker background, "
                       "built offline from MNIST (seeded, checksummed), 28x28 RGB",
        "format": "colour-mnist", "folder": "",  # built from MNIST's files
        "files": data.MNIST_FILES, "mirrors": data.MIRRORS,
        "shape": (28, 28), "channels": 3, "classes": 10,
        "sizes": {"train": 60000, "test": 10000},
    },
}


def image_layout(name):
    """The shape of one dataset's image array without N: (H, W) grey, (3, H, W) colour."""
    spec = _spec(name)
    return spec["shape"] if spec["channels"] == 1 else (spec["channels"], *spec["shape"])


def _spec(name):
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


# ----------------------------------------------------------------------------------
# Whose file is this?
# ----------------------------------------------------------------------------------


def _known_files():
    """Every checksum we know -> (dataset name, description of the file)."""
    known = {}
    for name, spec in DATASETS.items():
        if spec["format"] == "colour-mnist":     # MNIST's files, already listed
            continue
        for entry in spec["files"].values():
            filename, sha256, file_sha256 = data._checksums(entry)
            stem = filename.split("-idx")[0]     # "t10k-images"; CIFAR's name stays whole
            for digest in (sha256, file_sha256):
                if digest:
                    known[digest] = (name, f"{spec['title']}'s {stem} file")
    known[CIFAR10_PYTHON_ARCHIVE["file_sha256"]] = (
        None, "CIFAR-10's pickled Python version (cifar-10-python.tar.gz), which this "
              "package never reads (unpickling can run code); use cifar-10-binary.tar.gz")
    return known


def whose_file(digests):
    """'MNIST's t10k-images file' if one of the hex sha256 digests (of a file, or of its
    decompressed content) is a file we know, else None."""
    known = _known_files()
    for digest in digests:
        if digest in known:
            return known[digest][1]
    return None


def _owner_of(path):
    """(dataset name, description) of the file at `path` if we know it, else None.
    Unreadable or corrupt files are nobody's: their loading reports what is wrong."""
    try:
        raw = Path(path).read_bytes()
        digests = [hashlib.sha256(raw).hexdigest()]
        if data._is_gzip(path, raw):
            digests.append(hashlib.sha256(gzip.decompress(raw)).hexdigest())
    except (OSError, EOFError, zlib.error):
        return None
    known = _known_files()
    return next((known[d] for d in digests if d in known), None)


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------


def load_dataset(name, data_dir=None, download=True, splits=SPLITS, verify=True):
    """Load one dataset of DATASETS as uint8 arrays, downloading missing files if allowed.

    Args:
        name: a key of DATASETS: "mnist", "fashion-mnist", "kmnist", "cifar-10",
            "colour-mnist-v1".
        data_dir: the data folder (see the module docstring); None means
            $PIXELCNN_NP_DATA, else ./data.
        download: fetch missing files into the dataset's folder (created if needed).
            The coloured MNIST downloads MNIST's files; it is built, never downloaded.
        splits: ("train", "test") or one of them; only those files are read.
        verify: check every file against its checksums. With verify=False files of the
            right names and format load, whatever their content; extracted CIFAR-10
            batches are checked by size, count and labels either way.

    Returns:
        dict with, for each split asked for,
            "{split}_images" uint8: (N, H, W) grey, or (N, 3, H, W) colour (R, G, B)
            "{split}_labels" uint8 (N,), classes 0..9

    Raises:
        DataError naming the file and saying how to fix it, for anything missing,
        corrupt, of the wrong dataset or mis-shaped; also for an unknown name.
    """
    spec = _spec(name)
    splits = check_splits(splits)
    root = resolve_data_dir(data_dir)
    if spec["format"] == "colour-mnist":
        return _load_colour_mnist(root, download, splits, verify)
    if spec["format"] == "cifar10-binary":
        return _load_cifar10(spec, root, download, splits, verify)
    if name == "mnist":                          # MNIST_FILES / MIRRORS read at call time
        return data.load_mnist(root, download, verify, splits)
    folder, note = _idx_folder(name, spec, root)
    try:
        return data.load_idx_dataset(spec["files"], folder, download, verify, splits,
                                     spec["mirrors"], spec["title"])
    except DataError as err:
        if note is None:
            raise
        raise DataError(f"{err}\nNote: {note}") from err


def _idx_folder(name, spec, root):
    """Where an IDX dataset's files are: (folder, note for errors or None).

    Its own subfolder root/<folder> if that holds any of its files; else root itself
    if root holds files of its names that are not another dataset's; else the
    subfolder, where a download puts them (the note then says whose files root holds).
    """
    home = root / spec["folder"]
    if home == root:
        return root, None
    names = [data._checksums(entry)[0] for entry in spec["files"].values()]
    if any(data._find_file(home, filename) for filename in names):
        return home, None
    present = [p for p in (data._find_file(root, filename) for filename in names) if p]
    if not present:
        return home, None
    smallest = min(present, key=lambda p: p.stat().st_size)   # a labels file: cheap to hash
    owner = _owner_of(smallest)
    if owner is None or owner[0] == name:
        return root, None
    return home, (f"{smallest} is {owner[1]}, not {spec['title']}'s; {spec['title']}'s "
                  f"files belong in {home} (or point --data-dir at a folder holding them)")


# ----------------------------------------------------------------------------------
# CIFAR-10, binary version
# ----------------------------------------------------------------------------------


def _cifar10_remedy(missing=False):
    archive = CIFAR10_FILES["archive"]["name"]
    first = ("Let the script download it (drop --no-download; it goes to the folder "
             "above), " if missing else
             "Download it again (delete the file and re-run, which downloads what is "
             "missing), ")
    return (first + f"or point --data-dir (or the {data.DATA_DIR_ENV} environment "
            f"variable) at a folder containing {archive} (the binary version from "
            f"{CIFAR10_MIRRORS[0]}), or its extracted folder {CIFAR10_FOLDER}/ with "
            f"data_batch_1.bin .. data_batch_5.bin and test_batch.bin.")


def parse_cifar10_records(raw, path, expected_records=None):
    """Parse a CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes.

    Args:
        raw: the bytes of one .bin file.
        path: its name, for messages.
        expected_records: the record count a real batch has (10000), or None.

    Returns:
        images (N, 3, 32, 32) uint8, channel order R, G, B, each plane row-major,
        labels (N,) uint8 in 0..9. Fresh, writable arrays.

    Raises:
        DataError naming `path` for a size that is not a whole number of records
        (truncated, or CIFAR-100's 3074-byte records), a wrong record count, or a
        label above 9.
    """
    n, rest = divmod(len(raw), CIFAR10_RECORD_BYTES)
    if rest:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of {CIFAR10_RECORD_BYTES}-byte "
            f"records (1 label byte + 3072 pixel bytes): {rest} bytes left over, so the file "
            f"is truncated or not a CIFAR-10 binary batch. {_cifar10_remedy()}")
    if expected_records is not None and n != expected_records:
        raise DataError(
            f"{path}: {n} records, a CIFAR-10 batch holds {expected_records}. "
            f"{_cifar10_remedy()}")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(n, CIFAR10_RECORD_BYTES)
    labels = records[:, 0].copy()                                    # (N,)
    if n and labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise DataError(
            f"{path}: record {i} has label {labels[i]}, CIFAR-10's labels are 0..9; the "
            f"file is corrupt or not CIFAR-10. {_cifar10_remedy()}")
    images = records[:, 1:].reshape(n, 3, 32, 32).copy()             # (N, 3, 32, 32)
    return images, labels


def _cifar10_source(root, folder):
    """The first place holding CIFAR-10 under root/folder, then root: ("archive", path)
    or ("batches", folder of the .bin files); else None."""
    archive = CIFAR10_FILES["archive"]["name"]
    for base in dict.fromkeys([root / folder, root]):   # once each, home first
        if (base / archive).is_file():
            return "archive", base / archive
        for batches in (base / CIFAR10_FOLDER, base):
            if (batches / CIFAR10_BATCHES["test"][0]).is_file() or \
                    (batches / CIFAR10_BATCHES["train"][0]).is_file():
                return "batches", batches
    return None


def _read_cifar10_archive(path, verify, filenames):
    """{batch file name: bytes} of the batches `filenames` in cifar-10-binary.tar.gz."""
    raw = data._read_bytes(path, _cifar10_remedy())
    if verify:
        data.verify_checksums(raw, raw, path, None, CIFAR10_FILES["archive"]["file_sha256"],
                              "CIFAR-10", _cifar10_remedy())
    batches = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for filename in filenames:
                member = f"{CIFAR10_FOLDER}/{filename}"
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise DataError(f"{path}: the archive has no {member}. "
                                    f"{_cifar10_remedy()}") from None
                if not info.isfile():
                    raise DataError(f"{path}: {member} is not a regular file. "
                                    f"{_cifar10_remedy()}")
                batches[filename] = tar.extractfile(info).read()   # never extracted to disk
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a valid tar.gz archive ({err}). "
                        f"{_cifar10_remedy()}") from err
    return batches


def _load_cifar10(spec, root, download, splits, verify):
    source = _cifar10_source(root, spec["folder"])
    if source is None and download:
        data.download_files(spec["files"], root / spec["folder"], spec["mirrors"],
                            title=spec["title"])
        source = _cifar10_source(root, spec["folder"])
    if source is None:
        pickled = [p for p in (root / spec["folder"] / CIFAR10_PYTHON_ARCHIVE["name"],
                               root / CIFAR10_PYTHON_ARCHIVE["name"],
                               root / spec["folder"] / "cifar-10-batches-py",
                               root / "cifar-10-batches-py") if p.exists()]
        note = (f" Found {pickled[0]}: that is the pickled Python version, which this "
                f"package never reads (unpickling can run code)." if pickled else "")
        raise DataError(
            f"{root / spec['folder']}: no {CIFAR10_FILES['archive']['name']} nor "
            f"{CIFAR10_FOLDER}/*.bin (looked there and in {root}) and download=False."
            f"{note} {_cifar10_remedy(missing=True)}")

    kind, path = source
    wanted = [filename for split in splits for filename in CIFAR10_BATCHES[split]]
    batches = _read_cifar10_archive(path, verify, wanted) if kind == "archive" else None
    arrays = {}
    for split in splits:
        images, labels = [], []
        for filename in CIFAR10_BATCHES[split]:
            if batches is not None:
                raw, where = batches[filename], f"{path}:{CIFAR10_FOLDER}/{filename}"
            else:
                where = path / filename
                raw = data._read_bytes(where, _cifar10_remedy())
            x, y = parse_cifar10_records(raw, where, CIFAR10_RECORDS_PER_FILE)
            images.append(x)
            labels.append(y)
        arrays[f"{split}_images"] = np.concatenate(images)          # (N, 3, 32, 32)
        arrays[f"{split}_labels"] = np.concatenate(labels)          # (N,)
    return arrays


# ----------------------------------------------------------------------------------
# The coloured MNIST, built offline
# ----------------------------------------------------------------------------------


def colour_mnist_colours(n, split):
    """The colours of the first n images of a split of colour-mnist-v1.

    Image i of split s (0 train, 1 test) takes the i-th 64-bit word w of the PCG64
    stream seeded with np.random.SeedSequence([COLOUR_MNIST_SEED, s]) (BitGenerator
    streams are kept stable across NumPy versions; Generator methods are not, so none is
    used). With byte_k = (w >> 8k) & 255:
        digit colour       (R, G, B) = 128 + byte_k // 2 for k = 0, 1, 2    in 128..255
        background colour  (R, G, B) =       byte_k // 2 for k = 3, 4, 5    in 0..127
    so the digit is brighter than its background in every channel and always readable.

    Returns:
        digit (n, 3) uint8, background (n, 3) uint8.
    """
    seed = np.random.SeedSequence([COLOUR_MNIST_SEED, SPLITS.index(split)])
    words = np.random.PCG64(seed).random_raw(n)                      # (n,) uint64
    shifts = np.uint64(8) * np.arange(6, dtype=np.uint64)            # bytes 0..5
    octets = ((words[:, None] >> shifts) & np.uint64(255)).astype(np.uint8)  # (n, 6)
    digit = 128 + octets[:, 0:3] // 2
    background = octets[:, 3:6] // 2
    return digit, background


def colour_mnist(images, split):
    """colour-mnist-v1: MNIST's grey digits painted in colour, deterministically.

    For image i, with a = pixel / 255 and the colours of colour_mnist_colours:
        image[c] = background[c] * (1 - a) + digit[c] * a,  rounded to the nearest integer,
    computed exactly in integers as (background[c] * (255 - p) + digit[c] * p + 127) // 255
    (the exact quotient never ends in .5, since 2x = 255 (mod 510) has no integer
    solution, so this is plain rounding). Pixel 0 is the background colour exactly, 255 the
    digit colour exactly. Labels are MNIST's.

    Args:
        images: (N, 28, 28) uint8, a split of MNIST.
        split: "train" or "test" (each has its own colour stream).

    Returns:
        (N, 3, 28, 28) uint8, channels R, G, B.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"colour_mnist expects (N, H, W) uint8, got {images.dtype} "
                         f"{images.shape}")
    digit, background = colour_mnist_colours(len(images), split)
    out = np.empty((len(images), 3, *images.shape[1:]), dtype=np.uint8)
    for start in range(0, len(images), 10000):               # bounded memory: 10000 at a time
        block = slice(start, start + 10000)
        p = images[block, None].astype(np.uint16)                         # (B, 1, H, W)
        fg = digit[block, :, None, None].astype(np.uint16)               # (B, 3, 1, 1)
        bg = background[block, :, None, None].astype(np.uint16)          # (B, 3, 1, 1)
        # at most 255 * 255 + 127 = 65152: fits uint16
        out[block] = (bg * (255 - p) + fg * p + 127) // 255              # (B, 3, H, W)
    return out


def colour_mnist_reference(images, split):
    """The same recipe written the slow, obvious way: a float blend per image and channel,
    rounded with np.rint. A test checks colour_mnist against it."""
    digit, background = colour_mnist_colours(len(images), split)
    out = np.empty((len(images), 3, *np.shape(images)[1:]), dtype=np.uint8)
    for i in range(len(images)):
        a = images[i].astype(np.float64) / 255                            # (H, W)
        for c in range(3):
            out[i, c] = np.rint(background[i, c] * (1 - a) + digit[i, c] * a)
    return out


def _load_colour_mnist(root, download, splits, verify):
    mnist = data.load_mnist(root, download, verify, splits)
    arrays = {}
    for split in splits:
        images = colour_mnist(mnist[f"{split}_images"], split)
        if verify:          # real MNIST in, so the recorded arrays must come out
            actual = hashlib.sha256(images.tobytes()).hexdigest()
            expected = COLOUR_MNIST_SHA256[f"{split}_images"]
            if actual != expected:
                raise DataError(
                    f"colour-mnist-v1 {split} images built from {root} have sha256 {actual}, "
                    f"expected {expected}: the recipe's output changed (datasets.py or "
                    f"NumPy's PCG64 stream). A changed recipe needs a new version name, not "
                    f"a new checksum; pass verify=False to build it anyway.")
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = mnist[f"{split}_labels"]
    return arrays
