"""Remember what was submitted, so a re-run (after Ctrl-C, a crash, or a retry from the Prefect UI)
follows the import it already started instead of uploading the same data a second time.

A submission is identified by the Canvas instance, the account, the exact bytes (sha256) and the
options sent. The record is written *before* the upload ("pending") and completed with the import
id after it, each time atomically (temp file + rename). A pending record without an id means a run
died mid-upload: the next run asks Canvas which imports appeared since, rather than guessing.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel


class SubmissionRecord(BaseModel):
    key: str
    filename: str
    sha256: str
    started_at: datetime
    import_id: int | None = None


def submission_key(base_url: str, account_id: str, sha256: str, fields: list[tuple[str, str]]) -> str:
    identity = json.dumps([base_url, account_id, sha256, fields], separators=(",", ":"))
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


class SubmissionStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "canvas" / "submissions"

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> SubmissionRecord | None:
        try:
            return SubmissionRecord.model_validate_json(self._path(key).read_text())
        except FileNotFoundError:
            return None

    def put(self, record: SubmissionRecord) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(record.key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(record.model_dump_json())
        os.replace(tmp, path)

    def start(self, key: str, filename: str, sha256: str, *, replace: bool) -> SubmissionRecord:
        """Write the pending record. Without `replace` it must not exist yet (FileExistsError otherwise),
        so two runs started at once with the same data cannot both upload."""
        record = SubmissionRecord(key=key, filename=filename, sha256=sha256, started_at=datetime.now(UTC))
        if replace:
            self.put(record)
            return record
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(record.model_dump_json())
        return record

    def forget(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
