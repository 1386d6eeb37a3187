"""Every finished run on disk (images + run.json) before anyone is shown it.

A run is written into a hidden temporary folder and renamed into place in one step,
so a crash leaves either the whole run or nothing that the history would list.
Result links expire after 24 hours; this folder is the user's durable copy.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class RunRecord:
    """A saved run: its folder, its metadata and its image files (in order)."""

    path: Path
    meta: dict[str, Any]

    @property
    def id(self) -> str:
        """The run's folder name, unique and sortable by time."""
        return self.path.name

    @property
    def image_paths(self) -> list[Path]:
        """The saved images, in the order they were generated."""
        return [self.path / item["file"] for item in self.meta.get("images", [])]

    @property
    def input_path(self) -> Path | None:
        """The photo as it was sent, when it was a local photo."""
        name = self.meta.get("input_file")
        return self.path / name if name else None


def _new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RunStore:
    """The output folder: save runs atomically, list them newest first."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def save(self, meta: dict[str, Any], files: dict[str, bytes]) -> RunRecord:
        """Write files + run.json into a new run folder, atomically. Returns the record."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        run_id = _new_run_id(now)
        tmp = self.root / f"{TMP_PREFIX}{run_id}"
        tmp.mkdir()
        try:
            for name, data in files.items():
                _write_file(tmp / name, data)
            meta = {"id": run_id, "created": now.isoformat(timespec="seconds"), **meta}
            text = json.dumps(meta, ensure_ascii=False, indent=2)
            _write_file(tmp / RUN_FILE, text.encode("utf-8"))
            _fsync_dir(tmp)
            final = self.root / run_id
            os.rename(tmp, final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return RunRecord(final, meta)

    def remove_partial(self, older_than: float = 3600.0) -> int:
        """Delete unfinished run folders left by a crash (only old ones: another process may be writing)."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for path in self.root.glob(f"{TMP_PREFIX}*"):
            try:
                if path.is_dir() and path.stat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        return removed

    def list(self, limit: int | None = None) -> list[RunRecord]:
        """Saved runs, newest first. Unfinished or unreadable folders are skipped."""
        if not self.root.is_dir():
            return []
        names = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.name,
            reverse=True,
        )
        records: list[RunRecord] = []
        for path in names:
            record = self.load(path)
            if record is not None:
                records.append(record)
                if limit is not None and len(records) >= limit:
                    break
        return records

    def get(self, run_id: str) -> RunRecord | None:
        """One run by id, or None."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            return None
        return self.load(self.root / run_id)

    @staticmethod
    def load(path: Path) -> RunRecord | None:
        """Read one run folder; None if it is not a complete run."""
        try:
            meta = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        record = RunRecord(path, meta)
        if not all(p.is_file() for p in record.image_paths):
            return None
        return record
