"""Writing files so a reader never sees half of one: the one atomic writer of the library.

Traces, checkpoints, response cache entries and dataset indexes all go through
:func:`write_json_atomically`: the text goes to a temporary file in the same folder, is flushed to
disk, and the file is renamed over the target, so a crash or a concurrent reader finds the old file
or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_json_atomically", "write_text_atomically"]


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
"""The mode ``open(path, "w")`` would give a new file (``mkstemp``'s 0600 would make every file private)."""


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file, flushed to disk, renamed over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomically(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON (UTF-8, no NaN) to ``path`` atomically."""
    write_text_atomically(path, json.dumps(data, ensure_ascii=False, allow_nan=False))
