"""Files only genhook's own user may read: its var dir holds the database, the bundled
Redis's data and password, the operator key and the demo credentials.

Everything is created private (directories 0700, files 0600) rather than made private
afterwards, so no other local user can open a file in the moment between its creation and
a ``chmod``. A var dir left readable by an older genhook is tightened at start.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

#: What genhook's processes create under ``genhook up``: no access for group or others.
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 (``mkdir -p`` would not: parents get
    the default mode); an existing ``path`` is left as it is (see :func:`tighten_tree`)."""
    missing = []
    current = path.resolve()
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=PRIVATE_DIR_MODE)
    return path


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, atomically, in a file that is 0600 from its creation
    (a new temporary file renamed over the old one, whatever the old one's mode was)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as file:  # mkstemp creates 0600
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def create_private_file(path: Path) -> None:
    """Create an empty ``path`` as 0600 unless it exists (for files another library opens,
    such as a SQLite database: its -wal, -shm and -journal files take the same mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def tighten_tree(root: Path) -> list[Path]:
    """Take group and other access away from ``root`` and everything under it (symlinks
    are not followed); returns what had to change, for a warning."""
    changed = []
    for directory, subdirs, files in os.walk(root):
        for name in [directory, *(os.path.join(directory, n) for n in subdirs + files)]:
            info = os.lstat(name)
            if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
                continue
            os.chmod(name, stat.S_IMODE(info.st_mode) & ~0o077)
            changed.append(Path(name))
    return changed
