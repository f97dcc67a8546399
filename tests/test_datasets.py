"""Tests for pixelcnn_np.datasets: the registry, Fashion-MNIST and KMNIST (IDX), CIFAR-10's
binary batches, the coloured MNIST, and files of one dataset refused as another's.

No test touches the network: downloads go through a monkeypatched `data._fetch`. Small
files are written in each dataset's exact format, with checksums patched to match them.
Tests on real files use ../shared/mnist beside the project and the Debian package
dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`), and skip without them.
"""

import gzip
import hashlib
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelcnn_np import data, datasets
from pixelcnn_np.data import DataError
from pixelcnn_np.datasets import DATASETS, load_dataset, parse_cifar10_records

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "mnist"
needs_real_mnist = pytest.mark.skipif(
    not all((SHARED_MNIST / name).is_file() for name, _ in data.MNIST_FILES.values()),
    reason=f"real MNIST not found at {SHARED_MNIST}",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_real_fashion = pytest.mark.skipif(
    not all((DEBIAN_FASHION / e["name"]).is_file()
            for e in datasets.FASHION_MNIST_FILES.values()),
    reason=f"Fashion-MNIST not installed at {DEBIAN_FASHION} "
           f"(apt-get install dataset-fashion-mnist)",
)

SMALL = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sha256(raw):
    return hashlib.sha256(raw).hexdigest()


def make_idx(array):
    """uint8 array -> IDX bytes: 00 00 08 ndim, big-endian int32 dims, the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + \
        array.tobytes()


# ----------------------------------------------------------------------------------
# Fake IDX datasets: tiny arrays, and each table's checksums patched to match them
# ----------------------------------------------------------------------------------


def fake_arrays(seed):
    """{key: array}: 5 training and 3 test images 28x28, labels 0..9; one seed per dataset."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 5), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 10, size=n, dtype=np.uint8)
    return arrays


class FakeIdx:
    """A fake of one IDX dataset: its arrays and the bytes of its four .gz files."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.raw = {key: make_idx(a) for key, a in arrays.items()}        # decompressed
        self.gz = {key: gzip.compress(r, mtime=0) for key, r in self.raw.items()}

    def write(self, folder, keys=None, gunzip=False):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for key in keys or self.raw:
            name = data._checksums(data.MNIST_FILES[key])[0]              # same names for all
            if gunzip:
                (folder / name.removesuffix(".gz")).write_bytes(self.raw[key])
            else:
                (folder / name).write_bytes(self.gz[key])
        return folder


@pytest.fixture
def fakes(monkeypatch):
    """Fake MNIST, Fashion-MNIST (both pinned by content sha256) and KMNIST (pinned by the
    sha256 of its .gz files, as the real one is), with the tables patched to them."""
    out = {"mnist": FakeIdx(fake_arrays(1)), "fashion-mnist": FakeIdx(fake_arrays(2)),
           "kmnist": FakeIdx(fake_arrays(3))}
    for key in data.MNIST_FILES:
        name = data.MNIST_FILES[key][0]
        monkeypatch.setitem(data.MNIST_FILES, key, (name, sha256(out["mnist"].raw[key])))
        monkeypatch.setitem(datasets.FASHION_MNIST_FILES, key,
                            {"name": name, "sha256": sha256(out["fashion-mnist"].raw[key])})
        monkeypatch.setitem(datasets.KMNIST_FILES, key,
                            {"name": name, "file_sha256": sha256(out["kmnist"].gz[key])})
    return out


@pytest.fixture
def server(fake_network):
    """The fake network of conftest.py: (served url -> bytes, calls)."""
    return fake_network


def assert_loaded(loaded, arrays, splits=("train", "test")):
    assert sorted(loaded) == sorted(f"{s}_{k}" for s in splits for k in ("images", "labels"))
    for key, array in loaded.items():
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, arrays[key])


# ----------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------


def test_registry_states_each_datasets_facts():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "kmnist", "cifar-10", "colour-mnist-v1"}
    for name, spec in DATASETS.items():
        for key in ("title", "description", "format", "folder", "files", "mirrors",
                    "shape", "channels", "classes", "sizes"):
            assert key in spec, (name, key)
        assert spec["channels"] in (1, 3) and spec["classes"] == 10
        for entry in spec["files"].values():
            _, content_sha, file_sha = data._checksums(entry)
            assert any(len(d or "") == 64 for d in (content_sha, file_sha)), (name, entry)
        assert all(m.endswith("/") for m in spec["mirrors"])
    assert DATASETS["mnist"]["files"] is data.MNIST_FILES
    assert datasets.image_layout("mnist") == (28, 28)
    assert datasets.image_layout("cifar-10") == (3, 32, 32)
    assert datasets.image_layout("colour-mnist-v1") == (3, 28, 28)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'svhn'.*fashion-mnist.*cifar-10"):
        load_dataset("svhn", tmp_path)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("fashion-mnist", tmp_path, splits=("validation",))


def test_every_known_checksum_is_one_file():
    """No two files of the registry share a checksum, so 'whose file' has one answer."""
    digests = [d for spec in DATASETS.values() if spec["format"] != "colour-mnist"
               for entry in spec["files"].values() for d in data._checksums(entry)[1:] if d]
    assert len(digests) == len(set(digests)) == 13


# ----------------------------------------------------------------------------------
# Fashion-MNIST and KMNIST: the IDX datasets
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist"])
def test_idx_dataset_round_trip_in_its_subfolder(tmp_path, fakes, name):
    fakes[name].write(tmp_path / DATASETS[name]["folder"])
    assert_loaded(load_dataset(name, tmp_path, download=False), fakes[name].arrays)
    assert_loaded(load_dataset(name, tmp_path, download=False, splits=("test",)),
                  fakes[name].arrays, splits=("test",))


@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist"])
def test_idx_dataset_directly_in_data_dir(tmp_path, fakes, name):
    """--data-dir /usr/share/datasets/fashion-mnist: the files sit in data_dir itself."""
    fakes[name].write(tmp_path)
    assert_loaded(load_dataset(name, tmp_path, download=False), fakes[name].arrays)


def test_load_dataset_mnist_is_load_mnist(tmp_path, fakes, monkeypatch):
    fakes["mnist"].write(tmp_path)
    assert_loaded(load_dataset("mnist", tmp_path, download=False), fakes["mnist"].arrays)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert_loaded(load_dataset("mnist", download=False, splits=("train",)),
                  fakes["mnist"].arrays, splits=("train",))


def test_env_var_data_dir_holds_each_dataset_in_its_subfolder(tmp_path, fakes, monkeypatch):
    fakes["mnist"].write(tmp_path)
    fakes["fashion-mnist"].write(tmp_path / "fashion-mnist")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert_loaded(load_dataset("mnist", download=False), fakes["mnist"].arrays)
    assert_loaded(load_dataset("fashion-mnist", download=False), fakes["fashion-mnist"].arrays)


def test_fashion_mnist_accepts_gunzipped_files(tmp_path, fakes):
    fakes["fashion-mnist"].write(tmp_path / "fashion-mnist", gunzip=True)
    assert_loaded(load_dataset("fashion-mnist", tmp_path, download=False),
                  fakes["fashion-mnist"].arrays)


def test_kmnist_gunzipped_cannot_be_verified_and_says_why(tmp_path, fakes):
    fakes["kmnist"].write(tmp_path / "kmnist", gunzip=True)
    with pytest.raises(DataError, match="only the original file verifies") as info:
        load_dataset("kmnist", tmp_path, download=False)
    assert "train-images-idx3-ubyte" in str(info.value) and "--data-dir" in str(info.value)
    # without verification the same files load
    assert_loaded(load_dataset("kmnist", tmp_path, download=False, verify=False),
                  fakes["kmnist"].arrays)


@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist"])
def test_missing_files_are_named_with_the_remedy(tmp_path, fakes, name):
    fakes[name].write(tmp_path / DATASETS[name]["folder"], keys=["test_images", "test_labels"])
    with pytest.raises(DataError) as info:
        load_dataset(name, tmp_path, download=False)
    message = str(info.value)
    assert "missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in message
    assert "download=False" in message and "--no-download" in message
    assert DATASETS[name]["title"] in message and data.DATA_DIR_ENV in message
    assert "delete the file" not in message                      # nothing there to delete
    # the test split alone is there, and is enough
    assert_loaded(load_dataset(name, tmp_path, download=False, splits=("test",)),
                  fakes[name].arrays, splits=("test",))


@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist"])
def test_download_goes_into_the_subfolder_and_verifies(tmp_path, fakes, server, monkeypatch,
                                                       name):
    served, calls = server
    mirrors = ["https://dead.example/", "https://good.example/"]
    monkeypatch.setitem(DATASETS[name], "mirrors", mirrors)
    for key, gz in fakes[name].gz.items():
        served["https://good.example/" + data._checksums(data.MNIST_FILES[key])[0]] = gz
    assert_loaded(load_dataset(name, tmp_path), fakes[name].arrays)
    assert sorted(p.name for p in (tmp_path / DATASETS[name]["folder"]).iterdir()) == sorted(
        e[0] for e in map(data._checksums, data.MNIST_FILES.values()))   # no temp files
    assert sum(url.startswith("https://dead.example/") for url in calls) == 4
    calls.clear()
    load_dataset(name, tmp_path)                                  # all there: nothing fetched
    assert calls == []


def test_download_of_another_datasets_files_is_refused(tmp_path, fakes, server, monkeypatch):
    served, _ = server
    monkeypatch.setitem(DATASETS["fashion-mnist"], "mirrors", ["https://mixed-up.example/"])
    for key, gz in fakes["mnist"].gz.items():                      # the mirror serves MNIST
        served["https://mixed-up.example/" + data.MNIST_FILES[key][0]] = gz
    with pytest.raises(DataError, match="could not download") as info:
        load_dataset("fashion-mnist", tmp_path)
    assert "this is MNIST's train-images file, not Fashion-MNIST's" in str(info.value)
    assert list((tmp_path / "fashion-mnist").iterdir()) == []      # nothing written


# ----------------------------------------------------------------------------------
# Files of one dataset given as another
# ----------------------------------------------------------------------------------

CROSS = [  # (files of, loaded as, reason)
    ("fashion-mnist", "mnist", "this is Fashion-MNIST's t10k-images file, not MNIST's"),
    ("mnist", "fashion-mnist", "this is MNIST's t10k-images file, not Fashion-MNIST's"),
    ("kmnist", "fashion-mnist", "this is KMNIST's t10k-images file, not Fashion-MNIST's"),
    ("fashion-mnist", "kmnist", "this is Fashion-MNIST's t10k-images file, not KMNIST's"),
    ("mnist", "kmnist", "this is MNIST's t10k-images file, not KMNIST's"),
]


@pytest.mark.parametrize("owner, asked, reason", CROSS)
def test_another_datasets_file_is_refused_with_the_reason(tmp_path, fakes, owner, asked,
                                                          reason):
    home = fakes[asked].write(tmp_path / DATASETS[asked]["folder"])
    name = data.MNIST_FILES["test_images"][0]
    (home / name).write_bytes(fakes[owner].gz["test_images"])     # one file swapped in
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_dataset(asked, tmp_path, download=False)
    assert reason in str(info.value) and name in str(info.value)


def test_a_file_of_the_same_dataset_under_another_name(tmp_path, fakes):
    home = fakes["mnist"].write(tmp_path)
    (home / "t10k-labels-idx1-ubyte.gz").write_bytes(fakes["mnist"].gz["train_labels"])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch.*"
                                        "this is MNIST's train-labels file\\. "):
        load_dataset("mnist", tmp_path, download=False)


def test_a_corrupt_file_is_nobodys(tmp_path, fakes):
    """The control: a file no dataset knows is 'corrupt or not X', with no owner named."""
    home = fakes["fashion-mnist"].write(tmp_path / "fashion-mnist")
    bad = make_idx(np.zeros((3, 28, 28), dtype=np.uint8))
    (home / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bad))
    with pytest.raises(DataError, match="corrupt or not Fashion-MNIST") as info:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert "this is" not in str(info.value)


def test_mnist_in_data_dir_is_not_taken_for_fashion_mnist(tmp_path, fakes, server,
                                                           monkeypatch):
    """data/ holds MNIST's files under the same names: asking for Fashion-MNIST must not
    read them. Offline, the error says whose they are; online, it downloads."""
    fakes["mnist"].write(tmp_path)
    with pytest.raises(DataError, match="fashion-mnist: missing") as info:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert "t10k-labels-idx1-ubyte.gz is MNIST's t10k-labels file, not Fashion-MNIST's" in \
        str(info.value)
    served, _ = server
    monkeypatch.setitem(DATASETS["fashion-mnist"], "mirrors", ["https://good.example/"])
    for key, gz in fakes["fashion-mnist"].gz.items():
        served["https://good.example/" + data.MNIST_FILES[key][0]] = gz
    assert_loaded(load_dataset("fashion-mnist", tmp_path), fakes["fashion-mnist"].arrays)
    assert_loaded(load_dataset("mnist", tmp_path, download=False), fakes["mnist"].arrays)


def test_a_dataset_split_across_two_datasets_is_refused(tmp_path, fakes):
    """data_dir itself holds Fashion-MNIST's labels but MNIST's images: the labels let it
    through the folder choice, the checksum of the images stops it."""
    fakes["fashion-mnist"].write(tmp_path, keys=["train_labels", "test_labels"])
    fakes["mnist"].write(tmp_path, keys=["train_images", "test_images"])
    with pytest.raises(DataError, match="this is MNIST's train-images file, not Fashion"):
        load_dataset("fashion-mnist", tmp_path, download=False)


# ----------------------------------------------------------------------------------
# CIFAR-10, binary version
# ----------------------------------------------------------------------------------


def cifar_records(images, labels):
    """Write records the way CIFAR-10 does, one byte at a time, from (N, 3, 32, 32) images:
    label, then R row by row, then G, then B."""
    out = bytearray()
    for image, label in zip(images, labels):
        out.append(int(label))
        for channel in range(3):
            for row in range(32):
                for col in range(32):
                    out.append(int(image[channel, row, col]))
    return bytes(out)


def fake_cifar(n=3):
    """{batch file name: (images, labels)} for the six batches, n records each."""
    rng = np.random.default_rng(10)
    return {f: (rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8),
                rng.integers(0, 10, size=n, dtype=np.uint8))
            for f in datasets.CIFAR10_BATCHES["train"] + datasets.CIFAR10_BATCHES["test"]}


def cifar_expected(batches):
    out = {}
    for split, files in datasets.CIFAR10_BATCHES.items():
        out[f"{split}_images"] = np.concatenate([batches[f][0] for f in files])
        out[f"{split}_labels"] = np.concatenate([batches[f][1] for f in files])
    return out


def write_cifar_batches(folder, batches, edit=None):
    folder.mkdir(parents=True, exist_ok=True)
    for filename, (images, labels) in batches.items():
        raw = cifar_records(images, labels)
        (folder / filename).write_bytes(edit(filename, raw) if edit else raw)
    return folder


def cifar_archive(batches, extra=(), skip=()):
    """The bytes of a cifar-10-binary.tar.gz holding the batches (under
    cifar-10-batches-bin/), plus extra (name, bytes) members, minus names in skip."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = [(f"{datasets.CIFAR10_FOLDER}/{f}", cifar_records(*xy))
                   for f, xy in batches.items() if f not in skip] + list(extra)
        for name, raw in members:
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


@pytest.fixture
def small_cifar(monkeypatch):
    """Batches of 3 records instead of 10000."""
    monkeypatch.setattr(datasets, "CIFAR10_RECORDS_PER_FILE", 3)
    return fake_cifar(3)


def test_cifar_record_layout_is_label_then_r_g_b_planes():
    images = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    images[0, 0, 0, 1] = 11        # R of row 0, column 1: byte 1 + 1
    images[0, 1, 2, 0] = 22        # G of row 2, column 0: byte 1 + 1024 + 64
    images[0, 2, 31, 31] = 33      # B of the last pixel: the record's last byte
    raw = cifar_records(images, [7])
    assert len(raw) == datasets.CIFAR10_RECORD_BYTES == 3073
    assert raw[0] == 7 and raw[2] == 11 and raw[1 + 1024 + 64] == 22 and raw[-1] == 33
    x, y = parse_cifar10_records(raw, "one.bin", expected_records=1)
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [7] and x.dtype == y.dtype == np.uint8 and x.flags.writeable


@SMALL
@given(n=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_parse_cifar10_records_round_trip(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    x, y = parse_cifar10_records(cifar_records(images, labels), "b.bin")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


@SMALL
@given(st.binary(max_size=3 * 3073 + 5))
def test_parse_cifar10_records_bytes_give_arrays_or_data_error(raw):
    try:
        x, y = parse_cifar10_records(raw, "fuzz.bin")
    except DataError:
        return
    assert x.shape == (len(raw) // 3073, 3, 32, 32) and y.max(initial=0) <= 9


CIFAR_CORRUPTIONS = {   # edit of one batch's bytes -> words of the message
    "truncated record": (lambda raw: raw[:-1], "not a whole number of 3073-byte records"),
    "a byte too many": (lambda raw: raw + b"\x00", "1 bytes left over"),
    "CIFAR-100 sized records": (lambda raw: raw[:3074 * 2], "not a whole number"),
    "one record short": (lambda raw: raw[:-3073], "2 records, a CIFAR-10 batch holds 3"),
    "one record too many": (lambda raw: raw + raw[:3073], "4 records"),
    "label above 9": (lambda raw: raw[:3073] + b"\x0a" + raw[3074:], "record 1 has label 10"),
    "empty": (lambda raw: b"", "0 records"),
}


@pytest.mark.parametrize("case", list(CIFAR_CORRUPTIONS))
def test_corrupt_cifar_batch_is_named_with_the_reason(tmp_path, small_cifar, case):
    edit, words = CIFAR_CORRUPTIONS[case]
    folder = write_cifar_batches(
        tmp_path / "cifar-10" / datasets.CIFAR10_FOLDER, small_cifar,
        edit=lambda f, raw: edit(raw) if f == "data_batch_3.bin" else raw)
    with pytest.raises(DataError, match=words) as info:
        load_dataset("cifar-10", tmp_path, download=False)
    assert str(folder / "data_batch_3.bin") in str(info.value)
    assert "cifar-10-binary.tar.gz" in str(info.value) and "--data-dir" in str(info.value)
    # the test split does not read the broken training batch
    loaded = load_dataset("cifar-10", tmp_path, download=False, splits=("test",))
    np.testing.assert_array_equal(loaded["test_images"], small_cifar["test_batch.bin"][0])


@pytest.mark.parametrize("where", ["cifar-10/cifar-10-batches-bin", "cifar-10",
                                   "cifar-10-batches-bin", "."])
def test_cifar_extracted_batches_round_trip(tmp_path, small_cifar, where):
    write_cifar_batches(tmp_path / where, small_cifar)
    loaded = load_dataset("cifar-10", tmp_path, download=False)
    expected = cifar_expected(small_cifar)
    assert_loaded(loaded, expected)
    assert loaded["train_images"].shape == (15, 3, 32, 32)
    assert loaded["test_images"].shape == (3, 3, 32, 32)


def test_cifar_missing_batch_is_named(tmp_path, small_cifar):
    folder = write_cifar_batches(tmp_path / "cifar-10-batches-bin", small_cifar)
    (folder / "data_batch_5.bin").unlink()
    with pytest.raises(DataError, match="data_batch_5.bin: file not found"):
        load_dataset("cifar-10", tmp_path, download=False)


@pytest.fixture
def pinned_archive(monkeypatch, small_cifar):
    """The bytes of a small archive, with CIFAR10_FILES' checksum patched to it."""
    raw = cifar_archive(small_cifar)
    monkeypatch.setitem(datasets.CIFAR10_FILES, "archive",
                        {"name": "cifar-10-binary.tar.gz", "file_sha256": sha256(raw)})
    return raw


def test_cifar_archive_round_trip(tmp_path, small_cifar, pinned_archive):
    (tmp_path / "cifar-10").mkdir()
    (tmp_path / "cifar-10" / "cifar-10-binary.tar.gz").write_bytes(pinned_archive)
    assert_loaded(load_dataset("cifar-10", tmp_path, download=False), cifar_expected(small_cifar))
    loaded = load_dataset("cifar-10", tmp_path, download=False, splits=("test",))
    assert_loaded(loaded, cifar_expected(small_cifar), splits=("test",))


def test_cifar_archive_checksum_refusal(tmp_path, small_cifar, pinned_archive):
    other = cifar_archive(small_cifar, extra=[("cifar-10-batches-bin/readme.html", b"hi")])
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(other)
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz: checksum mismatch.*corrupt or "
                                        "not CIFAR-10"):
        load_dataset("cifar-10", tmp_path, download=False)
    # verify=False reads any well-formed archive
    assert_loaded(load_dataset("cifar-10", tmp_path, download=False, verify=False),
                  cifar_expected(small_cifar))


def test_pickled_python_archive_is_refused_by_name(tmp_path, small_cifar, monkeypatch):
    """A cifar-10-python.tar.gz renamed to the binary archive's name is recognised."""
    python_archive = cifar_archive(small_cifar)        # stands in for the pickled archive
    monkeypatch.setitem(datasets.CIFAR10_PYTHON_ARCHIVE, "file_sha256", sha256(python_archive))
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(python_archive)
    with pytest.raises(DataError, match="pickled Python version"):
        load_dataset("cifar-10", tmp_path, download=False)


def test_pickled_python_version_alone_is_pointed_out(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="no cifar-10-binary.tar.gz.*download=False") as info:
        load_dataset("cifar-10", tmp_path, download=False)
    assert "cifar-10-batches-py: that is the pickled Python version" in str(info.value)


@pytest.mark.parametrize("case", ["not gzip", "truncated", "missing member"])
def test_broken_cifar_archive(tmp_path, small_cifar, monkeypatch, case):
    raw = {"not gzip": b"this is not an archive",
           "truncated": cifar_archive(small_cifar)[:-100],
           "missing member": cifar_archive(small_cifar, skip=["test_batch.bin"])}[case]
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(raw)
    words = {"not gzip": "not a valid tar.gz", "truncated": "not a valid tar.gz",
             "missing member": "no cifar-10-batches-bin/test_batch.bin"}[case]
    with pytest.raises(DataError, match=words):
        load_dataset("cifar-10", tmp_path, download=False, verify=False)
    if case == "missing member":      # the training split alone does not need that member
        load_dataset("cifar-10", tmp_path, download=False, verify=False, splits=("train",))
    with pytest.raises(DataError, match="checksum mismatch"):      # verify=True: caught first
        load_dataset("cifar-10", tmp_path, download=False)


def test_unwritable_download_folder_is_a_data_error(tmp_path, fakes, server):
    (tmp_path / "fashion-mnist").write_text("a file where the folder should be")
    with pytest.raises(DataError, match="cannot create the folder to download Fashion-MNIST"):
        load_dataset("fashion-mnist", tmp_path / "fashion-mnist" / "deeper")


def test_cifar_download(tmp_path, small_cifar, pinned_archive, server):
    served, calls = server
    served["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"] = pinned_archive
    assert_loaded(load_dataset("cifar-10", tmp_path), cifar_expected(small_cifar))
    assert [p.name for p in (tmp_path / "cifar-10").iterdir()] == ["cifar-10-binary.tar.gz"]
    served.clear()
    served["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"] = pinned_archive[:-1]
    with pytest.raises(DataError, match="(?s)could not download.*checksum mismatch"):
        load_dataset("cifar-10", tmp_path / "elsewhere")
    assert list((tmp_path / "elsewhere" / "cifar-10").iterdir()) == []


# ----------------------------------------------------------------------------------
# The coloured MNIST
# ----------------------------------------------------------------------------------


@SMALL
@given(n=st.integers(1, 6), seed=st.integers(0, 2**16), split=st.sampled_from(["train", "test"]))
def test_colour_mnist_matches_its_float_reference(n, seed, split):
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 5, 4), dtype=np.uint8)
    images[0, 0, :2] = [0, 255]
    np.testing.assert_array_equal(datasets.colour_mnist(images, split),
                                  datasets.colour_mnist_reference(images, split))


def test_colour_mnist_recipe():
    images = np.zeros((2000, 2, 2), dtype=np.uint8)
    images[:, 0, 1] = 255
    images[:, 1, 0] = 128
    out = datasets.colour_mnist(images, "train")                    # (N, 3, 2, 2)
    digit, background = datasets.colour_mnist_colours(2000, "train")
    assert out.shape == (2000, 3, 2, 2) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0, 0], background)      # pixel 0: background
    np.testing.assert_array_equal(out[:, :, 0, 1], digit)           # pixel 255: the digit
    half = (background.astype(int) * 127 + digit.astype(int) * 128) / 255
    np.testing.assert_array_equal(out[:, :, 1, 0], np.rint(half))   # in between: the blend
    assert digit.min() >= 128 and background.max() <= 127           # always readable
    # colours spread over their whole ranges, independently per channel
    assert digit.max() == 255 and background.min() == 0
    assert abs(np.corrcoef(digit[:, 0], digit[:, 1])[0, 1]) < 0.1


def test_colour_mnist_is_deterministic_per_image():
    images = np.random.default_rng(0).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    a = datasets.colour_mnist(images, "test")
    np.testing.assert_array_equal(a, datasets.colour_mnist(images.copy(), "test"))
    # image i's colours do not depend on how many images follow it
    np.testing.assert_array_equal(a[:7], datasets.colour_mnist(images[:7], "test"))
    # the two splits have their own streams
    assert not np.array_equal(a, datasets.colour_mnist(images, "train"))


def test_colour_mnist_depends_on_its_seed(monkeypatch):
    """The negative control of the checksum: another seed paints other colours."""
    images = np.full((20, 2, 2), 255, dtype=np.uint8)
    a = datasets.colour_mnist(images, "train")
    monkeypatch.setattr(datasets, "COLOUR_MNIST_SEED", datasets.COLOUR_MNIST_SEED + 1)
    assert not np.array_equal(a, datasets.colour_mnist(images, "train"))


def test_colour_mnist_first_colours_are_pinned():
    """The first three training images' colours, written out: a change of the recipe or
    of NumPy's PCG64 stream shows up here even where MNIST is not at hand."""
    digit, background = datasets.colour_mnist_colours(3, "train")
    assert digit.tolist() == [[185, 180, 148], [209, 174, 234], [246, 179, 167]]
    assert background.tolist() == [[38, 65, 41], [49, 61, 101], [59, 113, 67]]


def test_load_colour_mnist_from_fake_mnist(tmp_path, fakes):
    fakes["mnist"].write(tmp_path)
    # fake MNIST in: the recorded checksum of the real arrays cannot match
    with pytest.raises(DataError, match="colour-mnist-v1 train images.*recipe"):
        load_dataset("colour-mnist-v1", tmp_path, download=False)
    loaded = load_dataset("colour-mnist-v1", tmp_path, download=False, verify=False)
    for split in ("train", "test"):
        np.testing.assert_array_equal(
            loaded[f"{split}_images"],
            datasets.colour_mnist(fakes["mnist"].arrays[f"{split}_images"], split))
        np.testing.assert_array_equal(loaded[f"{split}_labels"],
                                      fakes["mnist"].arrays[f"{split}_labels"])
    assert loaded["train_images"].shape == (5, 3, 28, 28)


def test_colour_mnist_without_mnist_says_so(tmp_path, fakes):
    with pytest.raises(DataError, match="missing .*MNIST files"):
        load_dataset("colour-mnist-v1", tmp_path, download=False)


@needs_real_mnist
def test_colour_mnist_checksum_of_the_real_arrays():
    """The recipe can never change silently: the arrays built from the real MNIST hash to
    the constants in datasets.py (load_dataset checks the same with verify=True)."""
    mnist = data.load_mnist(SHARED_MNIST, download=False)
    for split in ("train", "test"):
        images = datasets.colour_mnist(mnist[f"{split}_images"], split)
        assert sha256(images.tobytes()) == datasets.COLOUR_MNIST_SHA256[f"{split}_images"]
    loaded = load_dataset("colour-mnist-v1", SHARED_MNIST, download=False, splits=("test",))
    assert loaded["test_images"].shape == (10000, 3, 28, 28)
    np.testing.assert_array_equal(loaded["test_labels"], mnist["test_labels"])
    # the digits are still there: mean brightness is higher on MNIST's ink
    ink = mnist["test_images"] >= 128
    grey = loaded["test_images"].astype(np.float32).mean(axis=1)
    assert grey[ink].mean() > grey[~ink].mean() + 100


# ----------------------------------------------------------------------------------
# Real files
# ----------------------------------------------------------------------------------


@needs_real_fashion
def test_real_fashion_mnist():
    fashion = load_dataset("fashion-mnist", DEBIAN_FASHION, download=False)
    assert fashion["train_images"].shape == (60000, 28, 28)
    assert fashion["test_images"].shape == (10000, 28, 28)
    for split, n in (("train", 6000), ("test", 1000)):
        labels = fashion[f"{split}_labels"]
        assert labels.dtype == np.uint8
        assert np.bincount(labels).tolist() == [n] * 10           # 0..9, balanced


@needs_real_fashion
def test_real_fashion_mnist_in_a_data_dir_subfolder(tmp_path):
    (tmp_path / "fashion-mnist").symlink_to(DEBIAN_FASHION)
    fashion = load_dataset("fashion-mnist", tmp_path, download=False, splits=("test",))
    assert fashion["test_images"].shape == (10000, 28, 28)


@needs_real_fashion
def test_real_fashion_mnist_is_not_mnist():
    with pytest.raises(DataError, match="this is Fashion-MNIST's train-images file, not MNIST's"):
        load_dataset("mnist", DEBIAN_FASHION, download=False)


@needs_real_fashion
@needs_real_mnist
def test_real_mnist_is_not_fashion_mnist(tmp_path):
    for name, _ in data.MNIST_FILES.values():
        (tmp_path / name).symlink_to(SHARED_MNIST / name)
    home = tmp_path / "fashion-mnist"        # Fashion-MNIST's labels, MNIST's images
    home.mkdir()
    (home / "t10k-labels-idx1-ubyte.gz").symlink_to(DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz")
    (home / "t10k-images-idx3-ubyte.gz").symlink_to(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="this is MNIST's t10k-images file, not Fashion-MNIST's"):
        load_dataset("fashion-mnist", tmp_path, download=False, splits=("test",))
