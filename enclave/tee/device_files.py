"""File operations on configfs, sysfs and Gramine pseudo-files, as one seam.

Those file systems act on every operation (mkdir populates a report entry, a write to `inblob`
bumps `generation`, rmdir removes a populated entry); a plain directory does not. Tests subclass
`DeviceFiles` to add those effects over a temporary directory.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["DeviceFiles"]


class DeviceFiles:
    """The file operations TEE backends perform on configfs, sysfs and Gramine pseudo-files.

    Those file systems act on every operation (mkdir populates a report entry, a write to
    `inblob` bumps `generation`, rmdir removes a populated entry); a plain directory does not.
    Tests subclass this to add those effects over a temporary directory, calling these methods
    for the real I/O. Each write is one `write(2)` at offset 0, as sysfs binary attributes
    require; a short write raises `OSError`."""

    def mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700)

    def rmdir(self, path: Path) -> None:
        path.rmdir()

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(errno.EIO, f"short write ({written} of {len(data)} bytes)", str(path))
