"""Bring an existing ledger up to the current schema: create missing tables and add missing columns.

Why not Alembic: the schema only ever grows (new tables, new nullable columns), every worker runs
this on start, and it must be idempotent and safe when two workers start at once. Adding what is
missing, under PostgreSQL's advisory lock (SQLite: the caller's write transaction), covers that
without a migration history to ship and keep in sync.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.schema import CreateColumn

from ledger.models import metadata

# Arbitrary constant shared by every worker: serialises schema changes on PostgreSQL.
SCHEMA_LOCK_KEY = 7201463


def upgrade(conn: Connection) -> list[str]:
    """Create missing tables and nullable columns; returns what was added (for one log line)."""
    if conn.dialect.name == "postgresql":
        # Two workers starting on a fresh database would race to CREATE the same tables.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    added: list[str] = [f"table {t.name}" for t in metadata.sorted_tables if t.name not in existing]
    metadata.create_all(conn)
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable and column.server_default is None:
                # A NOT NULL column without a default cannot be added to rows that exist; the
                # schema only adds nullable columns, so this is a programming error, loudly.
                raise RuntimeError(f"ledger migration: {table.name}.{column.name} must be nullable to be added")
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
            added.append(f"column {table.name}.{column.name}")
    return added
