"""Running graphviz's ``dot`` with a time budget, and never leaving it behind.

``dot`` can take minutes on a dense graph (150 tasks with ten dependencies each) or a hostile
trace, and the ``graphviz`` package waits for it without a bound. Here it runs as a process of its
own: when the budget runs out, or the caller is interrupted (Ctrl-C, a SIGTERM sent to ``report``),
its whole process group is killed before the exception goes on. (A caller killed with SIGKILL
cannot clean up; the budget keeps such a ``dot`` short in the first place.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator

from ..errors import DrawingError

__all__ = ["dot_available", "run_dot"]


class _DotMissing(DrawingError):
    """The ``dot`` program is not installed."""


class _DotTimeout(DrawingError):
    """``dot`` did not finish within its budget (it has been killed)."""


class _DotFailed(DrawingError):
    """``dot`` exited with an error (its message is this error's)."""


def dot_available() -> bool:
    """Whether graphviz's ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def run_dot(source: str, seconds: float, fmt: str = "svg") -> str:
    """``dot -T<fmt>`` of ``source``. Raises :class:`~llmtaskgraph.errors.DrawingError` when ``dot`` is
    missing, fails, or is still running after ``seconds`` (then it has been killed)."""
    dot = shutil.which("dot")
    if dot is None:
        raise _DotMissing("graphviz's `dot` program is not installed")
    process = subprocess.Popen(
        [dot, f"-T{fmt}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    with _sigterm_as_interrupt():
        try:
            out, err = process.communicate(source.encode("utf-8"), timeout=seconds)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise _DotTimeout(f"`dot` took more than {seconds:g} s") from None
        except BaseException:  # KeyboardInterrupt, SIGTERM, SystemExit: dot must not outlive the call
            _kill(process)
            raise
    if process.returncode != 0:
        raise _DotFailed(err.decode("utf-8", "replace").strip() or f"`dot` exited with status {process.returncode}")
    return out.decode("utf-8")


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # dot's own group (and whatever it started), nothing else
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived while ``dot`` ran: raised so the process group is killed, then re-sent."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While ``dot`` runs in the main thread, a SIGTERM (``kill``, a job runner's stop) unwinds like
    Ctrl-C so ``dot`` is killed; afterwards the signal is handled as it would have been."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):  # someone else handles SIGTERM: leave it to them
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # die as the sender meant, now that dot is gone
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
