"""Prefect events for the things a silence alarm watches: a delivered export, an upload that ended.

A schedule that silently stops finding work looks exactly like one with nothing to do. These events
are what the proactive automations of `flows.alerts` expect to see; their absence is the alarm.

The helpers take plain values (common imports none of our packages) and never raise: an event is
a report, and a report must never fail a delivery that already happened. `emit_event` adds the
flow run, task run and deployment as related resources itself when called inside a run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prefect.events import emit_event

from common.redaction import redact_text

EXPORT_DELIVERED = "encoura.export.delivered"
UPLOAD_EVENT_PREFIX = "encoura.upload."
# Encoura's final upload statuses, as our outcomes spell them (see encoura_tasks/upload/steps.py).
UPLOAD_FINAL_STATUSES = frozenset({"done", "failure", "canceled"})

logger = logging.getLogger(__name__)


def _emit(event: str, resource: dict[str, str], payload: dict[str, Any], related: list[dict[str, str]]) -> bool:
    try:
        return emit_event(event=event, resource=resource, payload=payload, related=related) is not None
    except Exception as exc:  # never let a report break the work it reports on
        logger.warning("could not emit Prefect event %s (%s)", event, type(exc).__name__)
        return False


def emit_export_delivered(
    uid: str, product: str, file: str, size: int | None, deliveries: Mapping[str, str]
) -> bool:
    """One `encoura.export.delivered` event per export delivered to every destination.

    `deliveries` maps destination name -> final path; each destination is also a related resource
    (role `destination`), so an automation can filter on one destination.
    """
    destinations = sorted(deliveries)
    return _emit(
        EXPORT_DELIVERED,
        {
            "prefect.resource.id": f"encoura.export.{uid}",
            "prefect.resource.name": file or uid,
            "encoura.product": product,
        },
        {
            "uid": uid,
            "product": product,
            "file": file,
            "size": size,
            "destination": ", ".join(destinations),
            "deliveries": dict(deliveries),
        },
        [
            {"prefect.resource.id": f"encoura.destination.{name}", "prefect.resource.role": "destination"}
            for name in destinations
        ],
    )


def emit_upload_final(
    status: str, *, file: str, file_id: str | None, product_type: str, size: int | None, error: str | None = None
) -> bool:
    """`encoura.upload.<status>` (done, failure, canceled) once an upload reaches a final state in
    Encoura; other statuses (needs a person, timed out) are not final and emit nothing."""
    if status not in UPLOAD_FINAL_STATUSES:
        return False
    return _emit(
        f"{UPLOAD_EVENT_PREFIX}{status}",
        {
            "prefect.resource.id": f"encoura.upload.{file_id or file}",
            "prefect.resource.name": file,
            "encoura.product-type": product_type,
        },
        {
            "file": file,
            "file_id": file_id,
            "product_type": product_type,
            "size": size,
            "status": status,
            "error": redact_text(error) if error else None,
        },
        [],
    )
