"""The ledger: a small SQL record of every export listed, staged and delivered, and every file uploaded.

It is what makes runs restartable: every external step is recorded before and after it happens,
so a crash at any point is finished by the next run without duplicates.
"""

from ledger.liveness import pid_exists
from ledger.store import ClaimLost, ClaimOwner, DeliveryRow, ExportRow, IntentRow, Ledger, UploadRow

__all__ = ["ClaimLost", "ClaimOwner", "DeliveryRow", "ExportRow", "IntentRow", "Ledger", "UploadRow", "pid_exists"]
