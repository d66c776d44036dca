"""Private directories: a directory of secrets and data is 0700 and every file in it 0600.

The server's data directory holds the state database (with its WAL and SHM files),
the TSDB spool and the initial admin token; the agent's state directory holds its
credential. Both are created private, but an existing directory (made by hand, by a
package, restored from a backup) may be world-readable: `make_private` tightens it at
start and warns about each thing that was looser, so the operator learns of it.

This is the one module of `core/` that touches the file system; it does so only when
called, with the directory it is given.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_private(directory: Path, *, log: logging.Logger | None) -> list[Path]:
    """Create `directory` (0700) or tighten it, its subdirectories (0700) and files (0600); the paths that were looser.

    Each of them is logged as a warning on `log` (None: quietly, for files this process just created).
    Only permission bits are removed, never added (a 0400 file stays 0400); symbolic links are not followed.

    Raises:
        OSError: the directory cannot be created or a mode cannot be changed.
    """
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    loosened: list[Path] = []
    _tighten(directory, DIRECTORY_MODE, loosened)
    for root, dirs, files in os.walk(directory):
        base = Path(root)
        for name in dirs:
            _tighten(base / name, DIRECTORY_MODE, loosened)
        for name in files:
            _tighten(base / name, FILE_MODE, loosened)
    if log is not None:
        for path in loosened:
            log.warning("%s was readable or writable by others; tightened it to owner only", path)
    return loosened


def _tighten(path: Path, allowed: int, loosened: list[Path]) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return
    current = stat.S_IMODE(mode)
    if current & ~allowed:
        os.chmod(path, current & allowed)
        loosened.append(path)
