"""NDJSON export files read line by line, plain or gzip, from a byte offset (to resume).

Offsets count uncompressed bytes, so one checkpoint format serves both kinds of file; a gzip
file is inflated again up to the offset on resume (deflate has no random access), which is
quick next to ingesting. Progress is reported in bytes of the file on disk (compressed for
gzip): that is the size a user sees, and what the rate and ETA are about.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self, cast

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 1024 * 1024  # longer lines are rejected unread (bounded memory on garbage)
FINGERPRINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Line:
    """One line: its 1-based number, where the next one starts, its bytes (no newline)."""

    number: int
    end: int
    data: bytes
    too_long: bool = False

    @property
    def blank(self) -> bool:
        return not self.too_long and not self.data.strip()


def fingerprint(path: Path) -> str:
    """Size and a hash of the first 64 KiB: a replaced or rewritten file no longer matches
    (unlike an mtime, it survives a copy or a ``touch``)."""
    with path.open("rb") as f:
        head = f.read(FINGERPRINT_BYTES)
    return f"{path.stat().st_size}:{hashlib.sha256(head).hexdigest()[:32]}"


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


class ExportFile:
    """``with ExportFile(path, offset, line) as export: for line in export.lines(): ...``"""

    def __init__(self, path: Path, offset: int = 0, line: int = 0) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.gzip = is_gzip(path)
        self._offset = offset
        self._line = line
        self._raw: IO[bytes] | None = None
        self._text: IO[bytes] | None = None

    def __enter__(self) -> Self:
        raw: IO[bytes] = self.path.open("rb")
        # a GzipFile reads as a binary file (typeshed types it as a buffered stream only)
        text = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")) if self.gzip else raw
        self._raw, self._text = raw, text
        if self._offset:
            text.seek(self._offset)  # gzip: inflates up to it
            if text.tell() != self._offset:
                raise EOFError(f"{self.path} is shorter than the checkpoint's offset")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._text is not None and self._text is not self._raw:
            self._text.close()
        if self._raw is not None:
            self._raw.close()

    @property
    def position(self) -> int:
        """Bytes of the file on disk read so far (for progress)."""
        return self._raw.tell() if self._raw is not None else 0

    def lines(self) -> Iterator[Line]:
        assert self._text is not None, "use ExportFile as a context manager"
        text, number, offset = self._text, self._line, self._offset
        while data := text.readline(MAX_LINE_BYTES + 1):
            number += 1
            offset += len(data)
            too_long = len(data) > MAX_LINE_BYTES and not data.endswith(b"\n")
            if too_long:
                offset += _skip_rest_of_line(text)
                data = b""
            yield Line(number, offset, data.rstrip(b"\r\n"), too_long)


def _skip_rest_of_line(text: IO[bytes]) -> int:
    skipped = 0
    while chunk := text.readline(io.DEFAULT_BUFFER_SIZE * 16):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped
