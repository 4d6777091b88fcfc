"""Where an interrupted backfill stands: a small JSON file, rewritten after every batch.

Saved only after the batch's transaction commits, atomically (temporary file, fsync,
rename), so it never claims more than the database holds. A crash between the commit and
the save makes the rerun read that batch again; event ids make the repeat a no-op.
Why a file and not a table: it sits beside the export it describes, survives a wiped or
different database (the rerun then simply re-ingests), and needs no migration.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says what to do."""


@dataclass
class Counts:
    """What the lines of a file came to (kept across interrupted runs)."""

    lines: int = 0
    blank: int = 0
    accepted: int = 0
    duplicates: int = 0
    pending: int = 0
    registered: int = 0
    rejected: int = 0

    def add(self, other: Counts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class FileState:
    """One export's progress: lines up to ``line`` (ending at byte ``offset``) are stored."""

    fingerprint: str
    line: int = 0
    offset: int = 0
    done: bool = False
    rejected_bytes: int = 0  # size of FILE.rejected.ndjson that belongs to stored lines
    counts: Counts = field(default_factory=Counts)


@dataclass
class Checkpoint:
    """Per export (by absolute path) its progress, and the accounts still to project."""

    path: Path
    files: dict[str, FileState] = field(default_factory=dict)
    unprojected: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """The saved checkpoint, or an empty one when there is none."""
        if not path.exists():
            return cls(path)
        try:
            data = orjson.loads(path.read_bytes())
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            files = {
                name: FileState(**{**state, "counts": Counts(**state["counts"])})
                for name, state in data["files"].items()
            }
            return cls(path, files, set(data["unprojected"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"cannot read the checkpoint {path}: {error}; rerun with --restart to start over"
            ) from error

    def save(self) -> None:
        data: dict[str, Any] = {
            "version": VERSION,
            "files": {name: dataclasses.asdict(state) for name, state in self.files.items()},
            "unprojected": sorted(self.unprojected),
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as f:
            f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
