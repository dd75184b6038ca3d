"""Reading what a server process writes to a file it shares with the tests."""

from __future__ import annotations

import os
from typing import IO


def read_shared_file(file: IO[bytes]) -> str:
    """All of ``file`` so far, read without moving the file offset that the two processes share
    (a seek here would make the server's next line land where the reader was, over an earlier
    one): pread from 0 to the current size."""
    fd = file.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")
