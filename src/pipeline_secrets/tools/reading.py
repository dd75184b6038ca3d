"""Reading a document file within its budget: never more than ``max_bytes`` + 1 bytes of it."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import DocumentError
from ..pure.documents import DocumentLimits, check_size


def read_text(file: Path, max_bytes: int) -> str:
    """The text of ``file`` ('-': stdin); ``DocumentError`` (a ``LimitError`` when too large) when
    it cannot be read, is over ``max_bytes`` or is not UTF-8."""
    try:
        if str(file) == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with file.open("rb") as stream:
                data = stream.read(max_bytes + 1)
        check_size(len(data), DocumentLimits(max_bytes=max_bytes))
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError(f"'{file}' is not UTF-8 text") from None
    except OSError as exc:
        raise DocumentError(f"cannot read '{file}': {exc.strerror}") from None
