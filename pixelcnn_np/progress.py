"""A one-line progress bar with rate and ETA, written to stderr (no dependency).

    bar = Progress(total=938, label="epoch 1")
    bar.update(done=10, loss=0.12)   # redraws at most ~5 times a second
    bar.close()
"""

import sys
import time


def format_seconds(s):
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(self, total, label="", stream=None, width=24, enabled=True):
        self.total, self.label, self.width = total, label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.start = time.perf_counter()
        self.done = 0
        self._last_draw = 0.0
        # On a terminal, redraw one line in place; in a log file, print a line every 30 s.
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 0.2 if self.tty else 30.0

    def update(self, done, **fields):
        self.done = done
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > self.every or (self.tty and done >= self.total)):
            self._last_draw = now
            self.stream.write(("\r" if self.tty else "") + self.line(now, fields) + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self, now, fields):
        elapsed = now - self.start
        frac = self.done / self.total if self.total else 1.0
        filled = int(self.width * frac)
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        extra = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        eta_text = format_seconds(eta) if eta == eta else "--:--"
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{extra} elapsed {format_seconds(elapsed)} eta {eta_text} ")

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
