"""threads.py: the convolution engine's chunks shared among threads, without changing results."""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from threadpoolctl import ThreadpoolController

from pixelcnn_np import threads
from pixelcnn_np.conv import conv2d_backward, conv2d_backward_reference, conv2d_forward
from pixelcnn_np.masks import causal_mask


@given(n=st.integers(0, 40), parts=st.integers(1, 8))
def test_split_covers_every_item_once_in_order(n, parts):
    groups = threads.split(range(n), parts)
    assert [i for g in groups for i in g] == list(range(n))
    assert len(groups) == min(n, parts) and all(groups)
    if n == 0:
        return
    sizes = [len(g) for g in groups]
    assert max(sizes) - min(sizes) <= 1


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.n_threads() == 3
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv(threads.THREADS_ENV, bad)
        with pytest.raises(ValueError, match=threads.THREADS_ENV):
            threads.n_threads()


def test_groups_run_on_separate_threads_with_one_blas_thread_and_blas_gets_its_count_back(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    blas = ThreadpoolController().select(user_api="blas")
    before = [lib["num_threads"] for lib in blas.info()]
    seen = []

    def work(group):
        seen.append((threading.get_ident(), [lib["num_threads"] for lib in blas.info()]))
        threading.Event().wait(0.05)                     # long enough that both groups overlap
        return sum(group)

    assert threads.run_in_threads(work, range(10)) == [0 + 1 + 2 + 3 + 4, 5 + 6 + 7 + 8 + 9]
    assert len({ident for ident, _ in seen}) == 2        # two groups, two threads
    assert all(counts == [1] * len(counts) for _, counts in seen)
    assert [lib["num_threads"] for lib in blas.info()] == before


def test_the_workers_see_the_callers_errstate(monkeypatch):
    """np.errstate is a context variable: a worker thread would otherwise not see it, and
    the models' NaN-tolerant calls (check_finite=False under errstate) would warn."""
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    with np.errstate(invalid="ignore", over="raise"):
        seen = threads.run_in_threads(lambda g: (np.geterr()["invalid"], np.geterr()["over"]), range(4))
    assert seen == [("ignore", "raise")] * 2


def test_a_call_from_inside_a_worker_runs_serially(monkeypatch):
    """No pool inside the pool (it could deadlock once every worker waits on another)."""
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    inner = threads.run_in_threads(lambda g: threads.run_in_threads(len, g), range(6))
    assert inner == [[3], [3]]                           # each worker ran its group as one


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), n=st.integers(1, 9), c=st.integers(1, 5), o=st.integers(1, 5),
       k=st.sampled_from([3, 5]), mask_type=st.sampled_from("AB"), d=st.integers(1, 3))
def test_threaded_conv_equals_one_thread_and_the_reference(monkeypatch, seed, n, c, o, k, mask_type, d):
    """The same numbers (to float64 rounding: partial sums of dw add in another order)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, 8, 7))
    w = rng.standard_normal((o, c, k, k))
    b = rng.standard_normal(o)
    dy = rng.standard_normal((n, o, 8, 7))
    mask = causal_mask(k, mask_type)
    results = {}
    for t in ("1", "2", "3"):
        monkeypatch.setenv(threads.THREADS_ENV, t)
        monkeypatch.setattr("pixelcnn_np.conv._CHUNK_ELEMENTS", 64)   # many chunks: each thread gets several
        y, cache = conv2d_forward(x, w, b, mask, d)
        results[t] = (y, *conv2d_backward(dy, cache))
    dx_ref, dw_ref, db_ref = conv2d_backward_reference(dy, x, w, mask, d)
    for t in ("2", "3"):
        for a, ref in zip(results[t], results["1"]):
            np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results["2"][1], dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results["2"][2], dw_ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 200), t=st.integers(1, 16), rows=st.integers(1, 4000), hw=st.sampled_from([1, 49, 784, 1024]))
def test_image_chunks_fit_the_budget_and_share_equally(monkeypatch, n, t, rows, hw):
    """The one threading rule (conv._image_chunks): consecutive chunks covering every image
    once, each within the column budget (or one image), sizes within one image of each
    other, and a multiple of t of them (or one per image when there are fewer than t)."""
    import pixelcnn_np.conv as conv
    monkeypatch.setenv(threads.THREADS_ENV, str(t))
    chunks = conv._image_chunks(rows, hw, n)
    assert [i for n0, n1 in chunks for i in range(n0, n1)] == list(range(n))
    sizes = [n1 - n0 for n0, n1 in chunks]
    assert all(s >= 1 for s in sizes) and (not sizes or max(sizes) - min(sizes) <= 1)
    assert all(s == 1 or s * rows * hw <= conv._CHUNK_ELEMENTS for s in sizes)
    assert len(chunks) % t == 0 or len(chunks) == n
    shares = [sum(n1 - n0 for n0, n1 in g) for g in threads.split(chunks, t)]
    assert not shares or max(shares) - min(shares) <= max(sizes) if sizes else True


def test_every_layer_is_shared_among_the_threads(monkeypatch):
    """Small layers too (the rule before left layers of < 1024 gathered rows to OpenBLAS's
    threads): with two threads a 7x7 mask-B layer at 8 and at 64 channels both run their
    chunks on the pool's threads, not in the calling one (which would mean OpenBLAS's threads)."""
    import pixelcnn_np.conv as conv
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    names = []
    real = conv._gather_taps_kernel
    monkeypatch.setattr(conv, "_gather_taps_kernel",
                        lambda *a: names.append(threading.current_thread().name) or real(*a))
    for c in (8, 64):                                              # 200 and 1600 gathered rows
        names.clear()
        x = np.zeros((4, c, 6, 6), np.float32)
        w = np.zeros((4, c, 7, 7), np.float32)
        conv.conv2d_forward(x, w, np.zeros(4, np.float32), causal_mask(7, "B"))
        assert len(names) == 2 and all(n.startswith("pixelcnn_np") for n in names)   # 2 chunks, on the pool
