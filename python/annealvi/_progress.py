"""Progress reports of long calls (sweeps, designs, ODE predictions, trajectories).

Every long call takes ``progress=``:

* ``None`` (the default) — as the CLI: a bar when tqdm is installed and the session is
  interactive (stderr is a terminal, or a Jupyter kernel runs), unless the environment
  variable ``CI`` is set; nothing otherwise;
* ``True`` — a bar always: tqdm when installed, else a plain text line on stderr;
* ``False`` — nothing;
* a callable — ``progress(done, total)`` with the units of work done and planned so far
  (runs of a sweep, cells of a grid, candidate schedules and SGD runs of a design, steps of an
  ODE trajectory); ``total`` can grow when a call enters a new stage (a design's SGD check).

The native code counts the work on its worker threads; the calling thread passes the counts
to the callback about every 0.2 s while they change, and once at the end, with the GIL held.
An exception raised by the callback stops the call (as Ctrl-C does) and is raised.
"""

import os
import sys
from typing import Any, Callable, Optional, Union

ProgressArg = Union[None, bool, Callable[[int, int], Any]]


def _interactive() -> bool:
    if os.environ.get("CI"):
        return False
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _tqdm() -> Any:
    try:
        if "ipykernel" in sys.modules:
            from tqdm.auto import tqdm  # type: ignore[import-not-found]
        else:
            from tqdm import tqdm  # type: ignore[import-not-found]
        return tqdm
    except ImportError:
        return None


class _Text:
    """A one-line text bar on stderr (``progress=True`` without tqdm)."""

    def __init__(self, total: Optional[int], desc: str) -> None:
        self.desc = desc
        self.total = total
        self.last = ""

    def __call__(self, done: int, total: int) -> None:
        pct = " (%d%%)" % (100 * done // total) if total else ""
        line = "%s: %d/%d%s" % (self.desc, done, total, pct)
        if line != self.last:
            sys.stderr.write("\r" + line)
            sys.stderr.flush()
            self.last = line

    def close(self) -> None:
        if self.last:
            sys.stderr.write("\n")
            sys.stderr.flush()


class _Bar:
    """A tqdm bar fed with (done, total) counts."""

    def __init__(self, tqdm: Any, total: Optional[int], desc: str) -> None:
        self.bar = tqdm(total=total, desc=desc, leave=False)

    def __call__(self, done: int, total: int) -> None:
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class Reporter:
    """What :func:`reporter` returns: ``callback`` is the function to pass to the native call
    (None when quiet); a context manager that closes the bar on exit."""

    def __init__(self, callback: Optional[Callable[[int, int], Any]], close: Callable[[], None]):
        self.callback = callback
        self._close = close

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()


def reporter(progress: ProgressArg, total: Optional[int] = None, desc: str = "") -> Reporter:
    """The progress report of one call (see the module's documentation for ``progress``).

    Args:
        progress: None, True, False or a callable ``progress(done, total)``.
        total: the units of work planned, when known before the call (the bar's initial
            length; the native counts replace it).
        desc: the bar's label.

    Returns:
        a :class:`Reporter`; use it as ``with reporter(progress, n, "sweep") as r:
        native(..., r.callback)``.
    """
    if progress is None:
        progress = _interactive() and _tqdm() is not None
    if progress is False:
        return Reporter(None, lambda: None)
    if progress is True:
        tqdm = _tqdm()
        bar: Any = _Bar(tqdm, total, desc) if tqdm is not None else _Text(total, desc)
        return Reporter(bar, bar.close)
    if callable(progress):
        return Reporter(progress, lambda: None)
    raise TypeError("progress must be None, True, False or a callable progress(done, total), "
                    "not %s" % type(progress).__name__)


__all__ = ["reporter", "Reporter", "ProgressArg"]
