"""Tests for pixelcnn_np.data: IDX parsing, checksums, downloading, loading, binarizing.

No test touches the network: downloads go through a monkeypatched `data._fetch`.
Tests on the real MNIST files use ../shared/mnist beside the project and skip without it.
"""

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelcnn_np import data
from pixelcnn_np.data import DataError, binarize, load_mnist, parse_idx, read_idx

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "mnist"
needs_real_mnist = pytest.mark.skipif(
    not all((SHARED_MNIST / name).is_file() for name, _ in data.MNIST_FILES.values()),
    reason=f"real MNIST not found at {SHARED_MNIST}",
)

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
         np.float32: 0x0D, np.float64: 0x0E}


def make_idx(array):
    """Encode an array as IDX bytes: 00 00 code ndim, big-endian int32 dims, big-endian data."""
    array = np.asarray(array)
    code = CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def sha256(raw):
    return hashlib.sha256(raw).hexdigest()


# ----------------------------------------------------------------------------------
# parse_idx / read_idx
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (0, 28, 28)])
def test_parse_idx_round_trip(dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    out = parse_idx(make_idx(array))
    assert out.dtype == np.dtype(dtype)  # native byte order
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_parse_idx_mnist_like_header():
    raw = bytes.fromhex("00000803 00000002 00000002 00000003") + bytes(range(12))
    out = parse_idx(raw)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[1, 1, 2] == 11


VALID = make_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))

CORRUPTIONS = {
    "wrong magic": (b"\x01" + VALID[1:], "magic"),
    "unknown dtype code": (VALID[:2] + b"\x07" + VALID[3:], "dtype code"),
    "zero ndim": (VALID[:3] + b"\x00", "ndim"),
    "too short": (VALID[:3], "header"),
    "truncated header": (VALID[:9], "truncated IDX header"),
    "truncated payload": (VALID[:-1], "truncated IDX data"),
    "trailing bytes": (VALID + b"\x00", "trailing bytes"),
    "negative dim": (VALID[:4] + struct.pack(">i", -2) + VALID[8:], "negative"),
    "huge dims": (bytes([0, 0, 8, 2]) + struct.pack(">2i", 2**31 - 1, 2**31 - 1), "truncated"),
    "dims overflowing intp": (bytes([0, 0, 8, 3]) + struct.pack(">3i", *[2**31 - 1] * 3),
                              "too large"),
    "huge dims with a zero": (bytes([0, 0, 0x0E, 3]) + struct.pack(">3i", 0, 2**31 - 1, 2**31 - 1),
                              "too large"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_parse_idx_rejects_corruption(case):
    raw, words = CORRUPTIONS[case]
    with pytest.raises(DataError, match=words):
        parse_idx(raw)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_read_idx_corruption_names_the_file(tmp_path, case):
    raw, _ = CORRUPTIONS[case]
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="bad-idx1-ubyte.gz") as info:
        read_idx(path)
    assert "--data-dir" in str(info.value) and data.DATA_DIR_ENV in str(info.value)


def test_read_idx_plain_and_gzip(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    (tmp_path / "a-idx3-ubyte").write_bytes(make_idx(array))
    (tmp_path / "b-idx3-ubyte.gz").write_bytes(gzip.compress(make_idx(array)))
    # gzip detected by magic bytes even without the .gz suffix
    (tmp_path / "c-idx3-ubyte").write_bytes(gzip.compress(make_idx(array)))
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz", "c-idx3-ubyte"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.gz.*not found"):
        read_idx(tmp_path / "nothere.gz")


@pytest.mark.parametrize("raw", [b"not gzip at all", gzip.compress(VALID)[:-5], b"\x1f\x8b"])
def test_read_idx_bad_gzip(tmp_path, raw):
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(raw)
    with pytest.raises(DataError, match="broken-idx3-ubyte.gz.*gzip"):
        read_idx(path)


def test_read_idx_checksum(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(VALID))
    np.testing.assert_array_equal(read_idx(path, expected_sha256=sha256(VALID)), parse_idx(VALID))
    with pytest.raises(DataError, match="x-idx3-ubyte.gz: checksum mismatch.*not MNIST"):
        read_idx(path, expected_sha256="0" * 64)


# ----------------------------------------------------------------------------------
# Fuzzing: arbitrary bytes give an array or a DataError, never anything else
# ----------------------------------------------------------------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_data_error(raw):
    try:
        out = parse_idx(raw)
    except DataError:
        return
    assert isinstance(out, np.ndarray)
    assert out.nbytes <= len(raw)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(raw):
    parses_or_data_error(raw)


@FUZZ
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x0A, 0xFF]),
       ndim=st.integers(0, 255), rest=st.binary(max_size=80))
def test_fuzz_plausible_headers(code, ndim, rest):
    parses_or_data_error(bytes([0, 0, code, ndim]) + rest)


@st.composite
def mutated_idx(draw):
    """Valid IDX bytes with a few bytes flipped, inserted or deleted."""
    dtype = draw(st.sampled_from(list(CODES)))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    raw = bytearray(make_idx(np.ones(shape, dtype=dtype)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        i = draw(st.integers(0, len(raw)))
        if op == "insert":
            raw.insert(i, draw(st.integers(0, 255)))
        elif raw and i < len(raw):
            if op == "flip":
                raw[i] ^= draw(st.integers(1, 255))
            else:
                del raw[i]
    return bytes(raw)


@FUZZ
@given(mutated_idx())
def test_fuzz_mutated_idx(raw):
    parses_or_data_error(raw)


# ----------------------------------------------------------------------------------
# Downloading, with a fake network
# ----------------------------------------------------------------------------------

FAKE_SPLITS = {"train": 5, "test": 3}


def fake_mnist():
    """Tiny MNIST-shaped arrays: {key: array} with 28x28 uint8 images and 0..9 labels."""
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in FAKE_SPLITS.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 10, size=n, dtype=np.uint8)
    return arrays


@pytest.fixture
def fake_server(monkeypatch, fake_network):
    """Patch MNIST_FILES' checksums to a fake dataset and serve it from one 'mirror'.

    Returns (arrays, served, calls): served maps url -> gzipped bytes (tests may edit
    it); calls records every URL fetched. Unknown URLs fail like a dead mirror.
    """
    arrays = fake_mnist()
    served, calls = fake_network
    for key, (filename, _) in data.MNIST_FILES.items():
        raw = make_idx(arrays[key])
        monkeypatch.setitem(data.MNIST_FILES, key, (filename, sha256(raw)))
        served["https://good.example/" + filename] = gzip.compress(raw)
    monkeypatch.setattr(data, "MIRRORS", ["https://dead.example/", "https://good.example/"])
    return arrays, served, calls


def test_download_falls_back_to_second_mirror(tmp_path, fake_server):
    arrays, _, calls = fake_server
    target = tmp_path / "new" / "dir"
    data.download_mnist(target, mirrors=data.MIRRORS)
    names = sorted(name for name, _ in data.MNIST_FILES.values())
    assert sorted(os.listdir(target)) == names  # no temp files left
    assert sum(url.startswith("https://dead.example/") for url in calls) == 4
    np.testing.assert_array_equal(read_idx(target / names[0]), arrays["test_images"])
    calls.clear()
    data.download_mnist(target, mirrors=data.MIRRORS)  # all present: nothing fetched
    assert calls == []


def test_download_checksum_failure_leaves_nothing(tmp_path, fake_server):
    _, served, _ = fake_server
    for url in served:  # every mirror now serves valid gzip with the wrong content
        served[url] = gzip.compress(VALID)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        data.download_mnist(tmp_path, mirrors=data.MIRRORS)
    assert "dead.example" in str(info.value) and "good.example" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_download_failed_write_leaves_nothing(tmp_path, fake_server, monkeypatch):
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(data.os, "replace", failing_replace)
    with pytest.raises(DataError, match="disk full"):
        data.download_mnist(tmp_path, mirrors=data.MIRRORS)
    assert os.listdir(tmp_path) == []


def test_download_all_mirrors_fail(tmp_path, fake_server):
    with pytest.raises(DataError, match="could not download") as info:
        data.download_mnist(tmp_path, mirrors=["https://a.example/", "https://b.example/"])
    message = str(info.value)
    assert "https://a.example/" in message and "https://b.example/" in message
    assert "--data-dir" in message and data.DATA_DIR_ENV in message
    assert os.listdir(tmp_path) == []


def test_load_mnist_downloads_missing_files(tmp_path, fake_server):
    arrays, _, _ = fake_server
    loaded = load_mnist(tmp_path / "cache", download=True)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
        assert loaded[key].dtype == np.uint8


def test_load_mnist_without_download_names_missing_files(tmp_path, fake_server):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*download=False") as info:
        load_mnist(tmp_path, download=False)
    # an empty folder has no file to delete: the advice is to download
    assert "delete the file" not in str(info.value) and "--no-download" in str(info.value)


def test_load_mnist_test_split_alone_needs_only_the_test_files(tmp_path, fake_server):
    arrays, _, calls = fake_server
    for key, (filename, _) in data.MNIST_FILES.items():
        if key.startswith("test"):
            (tmp_path / filename).write_bytes(gzip.compress(make_idx(arrays[key])))
    loaded = load_mnist(tmp_path, download=False, splits=("test",))
    assert sorted(loaded) == ["test_images", "test_labels"] and calls == []
    np.testing.assert_array_equal(loaded["test_images"], arrays["test_images"])
    with pytest.raises(DataError, match="train-images"):              # the control: both splits need both
        load_mnist(tmp_path, download=False)
    with pytest.raises(ValueError, match="splits"):
        load_mnist(tmp_path, download=False, splits=("validation",))


def test_load_mnist_accepts_uncompressed_files(tmp_path, fake_server):
    arrays, _, calls = fake_server
    for key, (filename, _) in data.MNIST_FILES.items():
        (tmp_path / filename.removesuffix(".gz")).write_bytes(make_idx(arrays[key]))
    loaded = load_mnist(tmp_path)
    assert calls == []
    np.testing.assert_array_equal(loaded["train_labels"], arrays["train_labels"])


def write_fake_dir(path, arrays):
    for key, (filename, _) in data.MNIST_FILES.items():
        (path / filename).write_bytes(gzip.compress(make_idx(arrays[key])))


def test_load_mnist_validates_shapes_and_labels(tmp_path, fake_server):
    arrays, _, _ = fake_server
    bad = dict(arrays, test_labels=np.full(3, 12, dtype=np.uint8))
    write_fake_dir(tmp_path, bad)
    with pytest.raises(DataError, match="t10k-labels.*0..9"):
        load_mnist(tmp_path, verify=False)
    bad = dict(arrays, train_labels=np.zeros(4, dtype=np.uint8))
    write_fake_dir(tmp_path, bad)
    with pytest.raises(DataError, match="5 images.*4 labels"):
        load_mnist(tmp_path, verify=False)
    bad = dict(arrays, train_images=arrays["train_images"].reshape(5, -1))
    write_fake_dir(tmp_path, bad)
    with pytest.raises(DataError, match="train-images.*\\(N, H, W\\)"):
        load_mnist(tmp_path, verify=False)
    with pytest.raises(DataError, match="checksum mismatch"):  # verify=True catches it first
        load_mnist(tmp_path)


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    assert data.resolve_data_dir() == Path(data.DEFAULT_DATA_DIR)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.resolve_data_dir() == tmp_path
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_load_mnist_uses_env_var(monkeypatch, tmp_path, fake_server):
    arrays, _, calls = fake_server
    write_fake_dir(tmp_path, arrays)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    loaded = load_mnist()
    assert calls == []
    np.testing.assert_array_equal(loaded["test_images"], arrays["test_images"])


# ----------------------------------------------------------------------------------
# Real MNIST
# ----------------------------------------------------------------------------------


@needs_real_mnist
def test_load_real_mnist():
    mnist = load_mnist(SHARED_MNIST, download=False)
    expected = {"train_images": (60000, 28, 28), "train_labels": (60000,),
                "test_images": (10000, 28, 28), "test_labels": (10000,)}
    for key, shape in expected.items():
        assert mnist[key].shape == shape and mnist[key].dtype == np.uint8
    for key in ("train_labels", "test_labels"):
        assert set(np.unique(mnist[key])) == set(range(10))
    assert abs(mnist["train_images"].mean() - 33.3) < 0.1  # the well-known 0.1307 * 255
    # Binarized at 0.5, about 13% of pixels are on.
    assert 0.12 < binarize(mnist["test_images"]).mean() < 0.15


# ----------------------------------------------------------------------------------
# binarize
# ----------------------------------------------------------------------------------


def test_binarize_threshold_is_exact_at_127_128():
    images = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = binarize(images)
    assert out.dtype == np.uint8 and out.shape == images.shape
    flat = out.ravel()
    assert flat[127] == 0 and flat[128] == 1
    np.testing.assert_array_equal(flat, (np.arange(256) / 255 >= 0.5).astype(np.uint8))


def test_binarize_dynamic_is_seeded_and_unbiased():
    images = np.array([0, 1, 64, 128, 200, 254, 255], dtype=np.uint8)
    big = np.broadcast_to(images, (20000, images.size))
    a = binarize(big, "dynamic", np.random.default_rng(7))
    b = binarize(big, "dynamic", np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0, 1} and a.dtype == np.uint8
    assert a[:, 0].max() == 0 and a[:, -1].min() == 1  # p = 0 and p = 1 are exact
    p = images / 255
    se = np.sqrt(p * (1 - p) / big.shape[0])
    assert np.all(np.abs(a.mean(axis=0) - p) <= 5 * se + 1e-12)
    c = binarize(big, "dynamic", np.random.default_rng(8))
    assert not np.array_equal(a, c)


def test_binarize_errors():
    images = np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(TypeError, match="float64"):
        binarize(images.astype(np.float64))
    with pytest.raises(ValueError, match="threshold.*dynamic"):
        binarize(images, method="otsu")
    with pytest.raises(ValueError, match="rng"):
        binarize(images, method="dynamic")


def test_read_idx_file_checksum_pins_the_gz_itself(tmp_path):
    """For datasets that publish only the sha256 of their .gz files (KMNIST): the original
    .gz verifies; the same content gunzipped, or re-compressed, cannot."""
    gz = gzip.compress(VALID, mtime=0)
    (tmp_path / "k-idx3-ubyte.gz").write_bytes(gz)
    out = read_idx(tmp_path / "k-idx3-ubyte.gz", expected_file_sha256=sha256(gz), title="KMNIST")
    np.testing.assert_array_equal(out, parse_idx(VALID))
    (tmp_path / "k-idx3-ubyte").write_bytes(VALID)
    (tmp_path / "r-idx3-ubyte.gz").write_bytes(gzip.compress(VALID, compresslevel=1, mtime=1))
    for name in ("k-idx3-ubyte", "r-idx3-ubyte.gz"):
        with pytest.raises(DataError, match=f"{name}: checksum mismatch.*only the original "
                                            "file verifies.*corrupt or not KMNIST"):
            read_idx(tmp_path / name, expected_file_sha256=sha256(gz), title="KMNIST")
