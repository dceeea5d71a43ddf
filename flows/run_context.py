"""What the flows need to know about the Prefect run they are in (if any)."""

from __future__ import annotations

from prefect.context import FlowRunContext


def current_flow_run_id() -> str | None:
    """The flow run id: a UI retry reuses it, which lets the ledger hand that retry its own claims."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def in_flow_run() -> bool:
    return FlowRunContext.get() is not None
