"""Make the helper module tests/gradcheck.py importable as `from gradcheck import ...`,
whatever import mode pytest runs in."""

import sys
from pathlib import Path

import pytest

TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


@pytest.fixture
def fake_network(monkeypatch):
    """A fake network for the download tests: data._fetch serves `served` (url -> bytes)
    and fails like a dead mirror for any other URL; `calls` records every URL fetched.
    Returns (served, calls); tests fill `served`."""
    from pixelcnn_np import data
    served, calls = {}, []

    def fake_fetch(url, timeout):
        calls.append(url)
        if url not in served:
            raise OSError(f"connection refused: {url}")
        return served[url]

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    return served, calls
