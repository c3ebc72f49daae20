"""Ctrl-C during training: finish the current iteration, save ``last.pth``, stop; a second Ctrl-C stops at once.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread is, possibly between an
optimizer step and the iteration counter, or inside a data-loader call that consumed random numbers: a state
that cannot be resumed exactly. :class:`InterruptRequest` replaces the handler while training so the first
Ctrl-C only sets a flag that the loop checks between iterations.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Optional


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C (or a callback's KeyboardInterrupt) stopped training and ``last.pth`` was saved.

    A KeyboardInterrupt subclass, so code that does not know it behaves as for a plain Ctrl-C.

    Attributes:
        run_dir: the run directory.
        checkpoint: the checkpoint to resume from (None if the interrupt came before any could be written).
    """

    def __init__(self, run_dir: Optional[Path], checkpoint: Optional[Path]) -> None:
        hint = f"; resume with resume={str(checkpoint)!r}" if checkpoint else ""
        super().__init__(f"training interrupted{hint}")
        self.run_dir = run_dir
        self.checkpoint = checkpoint


class InterruptRequest:
    """A context manager that turns the first SIGINT into a request flag (main thread only).

    Args:
        announce: print what happens when Ctrl-C is pressed (rank 0 of a distributed run).

    Attributes:
        requested: whether Ctrl-C was pressed.
    """

    def __init__(self, announce: bool = True) -> None:
        self.requested = False
        self.announce = announce
        self._previous: Optional[Any] = None
        self._installed = False

    def __enter__(self) -> InterruptRequest:
        # signal.signal only works in the main thread; elsewhere Ctrl-C cannot reach the loop anyway.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:
            raise KeyboardInterrupt  # second Ctrl-C: the user wants out now
        self.requested = True
        if self.announce:
            print(
                "\nCtrl-C: stopping after this iteration to save last.pth (press again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
