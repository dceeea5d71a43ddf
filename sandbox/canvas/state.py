"""What the sandbox remembers: imports, every request received, and the faults to inject next."""

from __future__ import annotations

import csv
import io
import secrets
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.canvas.csv_kinds import count_key, kind_of, parse_header

# Steps a GET walks through, one per poll: (workflow_state, progress). No clocks, so tests are exact.
SCENARIOS: dict[str, list[tuple[str, float]]] = {
    "succeed": [("created", 0), ("importing", 30), ("importing", 70), ("FINAL", 100)],
    "with_warnings": [("created", 0), ("importing", 50), ("FINAL", 100)],
    "failed_with_messages": [("created", 0), ("importing", 40), ("FINAL", 40)],
    "failed": [("created", 0), ("importing", 20), ("FINAL", 20)],
    "aborted": [("created", 0), ("importing", 20), ("FINAL", 20)],
    "queued": [("created", 0)] * 5 + [("importing", 50), ("FINAL", 100)],
    "backwards": [
        ("created", 0),
        ("importing", 60),
        ("cleanup_batch", 90),
        ("cleanup_batch", 15),
        ("cleanup_batch", 55),
        ("FINAL", 100),
    ],
    "slow": [("created", 0)] + [("importing", float(p)) for p in range(5, 95, 5)],  # never finishes
}
FINAL_STATE = {
    "failed_with_messages": "failed_with_messages",
    "failed": "failed",
    "aborted": "aborted",
}
MAX_MESSAGES = 24  # Canvas caps processing_warnings / processing_errors in the API


def capped(messages: list[list[str]], kind: str) -> list[list[str]] | None:
    """Like Canvas: the first 24 messages, then one ["", "There were N more <kind>"] row."""
    if not messages:
        return None
    if len(messages) <= MAX_MESSAGES:
        return [list(m) for m in messages]
    extra = len(messages) - MAX_MESSAGES
    return [list(m) for m in messages[:MAX_MESSAGES]] + [["", f"There were {extra} more {kind}"]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # name -> (filename, type, bytes)


@dataclass
class ImportRecord:
    id: int
    scenario: str
    options: dict[str, str]
    filename: str
    data: bytes
    created_at: str
    steps: list[tuple[str, float]]
    step: int = 0
    aborted: bool = False
    warnings: list[list[str]] = field(default_factory=list)
    errors: list[list[str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    supplied: list[str] = field(default_factory=list)
    errors_file_id: int | None = None
    ended_at: str | None = None
    restored: str | None = None  # restored | partially_restored, once restore_states ran
    restore_params: dict[str, str] = field(default_factory=dict)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analyse(filename: str, data: bytes) -> tuple[dict[str, int], list[str], list[list[str]], list[list[str]]]:
    """Counts, supplied batches, warnings and errors, computed from the uploaded CSVs like Canvas does."""
    csvs: list[tuple[str, bytes]] = []
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            csvs = [(n, zf.read(n)) for n in zf.namelist() if n.lower().endswith(".csv")]
    elif filename.lower().endswith(".csv"):
        csvs = [(filename, data)]
    counts: dict[str, int] = {}
    supplied: list[str] = []
    warnings: list[list[str]] = []
    errors: list[list[str]] = []
    user_ids: set[str] = set()
    enrollments: list[tuple[str, dict[str, str]]] = []
    for name, raw in csvs:
        text = raw.decode("utf-8-sig", errors="replace")
        rows = list(csv.DictReader(io.StringIO(text)))
        header = parse_header(text.split("\n", 1)[0])
        kind = kind_of(header)
        if kind is None:
            errors.append([name, "Couldn't find Canvas CSV import headers"])
            continue
        supplied.append(kind)
        counts[count_key(kind)] = counts.get(count_key(kind), 0) + len(rows)
        for row in rows:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            if kind == "user":
                user_ids.add(row.get("user_id", ""))
                if row.get("status", "active") not in ("active", "deleted", "suspended"):
                    warnings.append([name, f'Improper status "{row.get("status")}" for user {row.get("user_id")}'])
            if kind == "enrollment":
                enrollments.append((name, row))
    if user_ids:
        for name, row in enrollments:
            if row.get("user_id") and row["user_id"] not in user_ids:
                warnings.append(
                    [
                        name,
                        (
                            f"User not found for enrollment (User ID: {row['user_id']}, "
                            f"Course ID: {row.get('course_id', '')}, Section ID: {row.get('section_id', '')}, "
                            f"Role: {row.get('role', '')})"
                        ),
                    ]
                )
    return counts, supplied, warnings, errors


class SandboxState:
    """Shared between the HTTP app and the test that drives it; every access holds the lock."""

    def __init__(self, *, account_id: str = "1", token: str | None = None, sub_account_ids: tuple[str, ...] = ("2",)):
        self.lock = threading.RLock()
        self.account_id = account_id
        self.token = token or f"sandbox~{secrets.token_urlsafe(24)}"
        self.sub_account_ids = set(sub_account_ids)
        self.imports: dict[int, ImportRecord] = {}
        self.files: dict[int, tuple[str, bytes, str]] = {}  # id -> (filename, bytes, verifier)
        self.requests: list[RecordedRequest] = []
        # Fault and scenario knobs (set them from tests):
        self.rate_limit_next_n = 0
        self.fail_next_n_5xx = 0
        self.fault_status = 503
        self.fault_methods: frozenset[str] = frozenset({"GET", "POST", "PUT"})  # which requests the faults hit
        self.retry_after: str | None = None
        self.fail_after_create_next_n = 0  # POST creates the import, then answers 500
        self.known_term_ids: set[str] | None = None  # None: every batch_mode_term_id exists
        self.abort_loses_race = False  # an abort arrives just as the import completes: it finishes, abort 404s
        self.default_scenario = "auto"  # auto: derived from the data (warnings -> imported_with_messages)
        self.scenario_for_file: dict[str, str] = {}
        self._next_id = 100
        self._next_file_id = 9000
        self._next_progress_id = 500

    # -- inspection helpers for tests ---------------------------------------------------------------
    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def submissions(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/sis_imports")]

    # -- behaviour ----------------------------------------------------------------------------------
    def scenario_for(self, filename: str, options: dict[str, str]) -> str:
        if filename in self.scenario_for_file:
            return self.scenario_for_file[filename]
        if "sandbox_scenario" in options:
            return options["sandbox_scenario"]
        lowered = filename.lower()
        for name in (
            "failed_with_messages",
            "with_warnings",
            "failed",
            "aborted",
            "queued",
            "backwards",
            "slow",
            "succeed",
        ):
            if name in lowered:
                return name
        return self.default_scenario

    def create_import(self, filename: str, data: bytes, options: dict[str, str]) -> ImportRecord:
        with self.lock:
            scenario = self.scenario_for(filename, options)
            counts, supplied, warnings, errors = analyse(filename, data)
            if scenario == "with_warnings" and not warnings:
                warnings = [[filename, "Sandbox: a warning you asked for"]]
            if scenario == "failed_with_messages" and not errors:
                errors = [[filename, "Sandbox: an error you asked for"]]
            steps = SCENARIOS.get(scenario if scenario in SCENARIOS else "succeed", SCENARIOS["succeed"])
            self._next_id += 1
            record = ImportRecord(
                id=self._next_id,
                scenario=scenario,
                options=dict(options),
                filename=filename,
                data=data,
                created_at=now(),
                steps=list(steps),
                warnings=warnings,
                errors=errors,
                counts=counts,
                supplied=supplied,
            )
            self.imports[record.id] = record
            return record

    def final_state(self, record: ImportRecord) -> str:
        if record.aborted:
            return "aborted"
        if record.scenario in FINAL_STATE:
            return FINAL_STATE[record.scenario]
        if record.errors and not record.counts:
            return "failed_with_messages"
        return "imported_with_messages" if (record.warnings or record.errors) else "imported"

    def advance(self, record: ImportRecord) -> None:
        with self.lock:
            if record.step < len(record.steps) - 1 and not record.aborted:
                record.step += 1

    def abort(self, record: ImportRecord) -> bool:
        with self.lock:
            if self.abort_loses_race:
                record.step = len(record.steps) - 1
            if self.is_done(record):
                return False
            record.aborted = True
            record.ended_at = now()
            return True

    def abort_all_pending(self) -> int:
        """Abort every import that has not finished; returns how many."""
        with self.lock:
            pending = [r for r in self.imports.values() if not self.is_done(r)]
            for record in pending:
                self.abort(record)
            return len(pending)

    def state_of(self, record: ImportRecord) -> str:
        """The workflow_state a GET would show now, without advancing the record."""
        with self.lock:
            if record.restored:
                return record.restored
            if self.is_done(record):
                return self.final_state(record)
            return record.steps[record.step][0]

    def restore(self, record: ImportRecord, params: dict[str, str]) -> dict[str, Any]:
        """restore_states: roll the import back (at once here) and answer Canvas's Progress object."""
        with self.lock:
            record.restore_params = dict(params)
            record.restored = "restored"
            self._next_progress_id += 1
            return {
                "id": self._next_progress_id,
                "context_id": record.id,
                "context_type": "SisBatch",
                "tag": "sis_batch_state_restore",
                "completion": 0.0,
                "workflow_state": "queued",
                "created_at": now(),
                "updated_at": now(),
                "message": None,
                "url": f"/api/v1/progress/{self._next_progress_id}",
            }

    def is_done(self, record: ImportRecord) -> bool:
        return record.aborted or record.steps[record.step][0] == "FINAL"

    def errors_file(self, record: ImportRecord) -> int | None:
        with self.lock:
            if not (record.warnings or record.errors) or not self.is_done(record):
                return None
            if record.errors_file_id is None:
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(["sis_import_id", "file", "message", "row"])
                for i, (file, message) in enumerate(record.errors + record.warnings, start=1):
                    writer.writerow([record.id, file, message, i])
                self._next_file_id += 1
                record.errors_file_id = self._next_file_id
                self.files[self._next_file_id] = (
                    f"sis_errors_attachment_{record.id}.csv",
                    out.getvalue().encode(),
                    f"v{record.id}x{self._next_file_id}",
                )
            return record.errors_file_id

    def render(self, record: ImportRecord, base_url: str) -> dict[str, Any]:
        with self.lock:
            state, progress = record.steps[record.step]
            done = self.is_done(record)
            if done:
                state = record.restored or self.final_state(record)
                if record.ended_at is None:
                    record.ended_at = now()
            body: dict[str, Any] = {
                "id": record.id,
                "created_at": record.created_at,
                "updated_at": now(),
                "ended_at": record.ended_at if done else None,
                "workflow_state": state,
                "progress": progress,
                "data": {
                    "import_type": record.options.get("import_type", "instructure_csv"),
                    "supplied_batches": record.supplied,
                    "counts": {
                        **{
                            k: 0
                            for k in (
                                "accounts",
                                "terms",
                                "users",
                                "courses",
                                "sections",
                                "enrollments",
                                "xlists",
                                "groups",
                            )
                        },
                        **record.counts,
                        "warning_count": len(record.warnings),
                        "error_count": len(record.errors),
                    }
                    if done
                    else None,
                },
                "statistics": None,
                "errors_attachment": None,
                "user": None,
                "processing_warnings": capped(record.warnings, "warnings") if done else None,
                "processing_errors": capped(record.errors, "errors") if done else None,
                "batch_mode": record.options.get("batch_mode") in ("true", "1"),
                "batch_mode_term_id": record.options.get("batch_mode_term_id"),
                "multi_term_batch_mode": "multi_term_batch_mode" in record.options,
                "skip_deletes": record.options.get("skip_deletes") in ("true", "1"),
                "override_sis_stickiness": record.options.get("override_sis_stickiness") in ("true", "1"),
                "add_sis_stickiness": record.options.get("add_sis_stickiness") in ("true", "1"),
                "clear_sis_stickiness": record.options.get("clear_sis_stickiness") in ("true", "1"),
                "diffing_data_set_identifier": record.options.get("diffing_data_set_identifier"),
                "diffed_against_import_id": None,
                "csv_attachments": [],
            }
            file_id = self.errors_file(record) if done else None
            if file_id is not None:
                name, data, verifier = self.files[file_id]
                body["errors_attachment"] = {
                    "id": file_id,
                    "display_name": name,
                    "filename": name,
                    "content-type": "text/csv",
                    "size": len(data),
                    "url": f"{base_url}/files/{file_id}/download?download_frd=1&verifier={verifier}",
                }
            return body
