"""Make the helper module tests/gradcheck.py importable as `from gradcheck import ...`,
whatever import mode pytest runs in."""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
