"""The ledger: a small SQL record of every export listed, staged and delivered, and every file uploaded.

It is what makes runs restartable: every external step is recorded before and after it happens,
so a crash at any point is finished by the next run without duplicates.
"""

from ledger.store import ClaimOwner, DeliveryRow, ExportRow, Ledger, UploadRow

__all__ = ["ClaimOwner", "DeliveryRow", "ExportRow", "Ledger", "UploadRow"]
