"""Command-line plumbing shared by the example scripts: argument types that reject bad
values with a message naming the flag, and a parser whose errors are one line."""

import argparse
import math
import sys


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
