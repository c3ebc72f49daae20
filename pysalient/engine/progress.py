"""A dependency-free progress line for training: iteration, losses, learning rate, speed and ETA.

On a terminal the line is redrawn in place (at most ``refresh_seconds`` apart); in a log file or a pipe a
full line is printed every ``every`` iterations instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Mapping, Optional, TextIO

BAR_WIDTH = 20


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``D days, H:MM:SS`` past a day)."""
    seconds = max(int(seconds + 0.5), 0)
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days} days, {text}" if days else text


class ProgressPrinter:
    """Prints ``iteration/total [bar] loss ... lr ... it/s ETA``.

    Args:
        total: iterations of the whole run.
        start: iteration this session starts at (a resumed run's speed counts only its own iterations).
        every: off a terminal, print every this many iterations (and the last one).
        stream: where to print (stderr by default, so stdout stays machine-readable).
        refresh_seconds: minimum time between redraws on a terminal.
        per_epoch: iterations per epoch; when > 0 the line starts with ``epoch e/E``.
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        every: int = 20,
        stream: Optional[TextIO] = None,
        refresh_seconds: float = 0.2,
        per_epoch: int = 0,
    ) -> None:
        self.total = int(total)
        self.start = int(start)
        self.every = max(int(every), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.refresh_seconds = refresh_seconds
        self.per_epoch = max(int(per_epoch), 0)
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._width = 0

    def update(self, iteration: int, values: Mapping[str, float], force: bool = False) -> None:
        """Reports that ``iteration`` iterations are done; ``values`` are shown as ``name value``."""
        last = iteration >= self.total
        if self.interactive:
            now = time.perf_counter()
            if not (force or last or now - self._last_draw >= self.refresh_seconds):
                return
            self._last_draw = now
            line = self.line(iteration, values)
            self.stream.write("\r" + line.ljust(self._width))  # pad over a longer previous line
            self._width = len(line)
        else:
            if not (force or last or iteration % self.every == 0):
                return
            self.stream.write(self.line(iteration, values) + "\n")
        self.stream.flush()

    def line(self, iteration: int, values: Mapping[str, float]) -> str:
        """The text of the progress line at ``iteration``."""
        fraction = min(max(iteration / self.total, 0.0), 1.0) if self.total else 1.0
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        elapsed = time.perf_counter() - self._started
        done = iteration - self.start
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        eta = format_duration((self.total - iteration) / rate) if rate > 0 else "?"
        shown = " ".join(f"{name} {_number(value)}" for name, value in values.items())
        digits = len(str(self.total))
        speed = f"{rate:.2f} it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.2f} s/it"
        epoch = ""
        if self.per_epoch:
            epochs = -(-self.total // self.per_epoch)
            epoch = f"epoch {min(max(iteration - 1, 0) // self.per_epoch + 1, epochs)}/{epochs} "
        return f"{epoch}{iteration:>{digits}}/{self.total} {fraction:4.0%} [{bar}] {shown} {speed} ETA {eta}"

    def close(self) -> None:
        """Ends the in-place line on a terminal."""
        if self.interactive and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _number(value: float) -> str:
    """Short text of a loss or learning rate: 4 significant digits, scientific for small rates."""
    return f"{value:.3e}" if 0 < abs(value) < 1e-3 else f"{value:.4g}"
