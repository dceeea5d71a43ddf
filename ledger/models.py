"""Table definitions (SQLAlchemy Core: the store issues conditional updates, so an ORM adds nothing)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Export lifecycle: listed -> staged -> delivered; `rejected` is final until --redeliver (e.g. an empty file).
exports = Table(
    "exports",
    metadata,
    Column("uid", String(128), primary_key=True),
    Column("product_key", String(64), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("file_name", String(255), unique=True),  # unique forever: Slate overwrites same names in processed/
    Column("source_name", Text),
    Column("size", BigInteger),
    Column("sha256", String(64)),
    Column("listed_at", DateTime(timezone=True), nullable=False),
    Column("staged_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("claimed_by", String(255)),
    Column("claim_expires_at", DateTime(timezone=True)),
)

# One row per export and destination: a delivery stays pending until that destination confirmed it.
deliveries = Table(
    "deliveries",
    metadata,
    Column("export_uid", String(128), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("relative_path", Text),
    Column("final_path", Text),
    Column("size", BigInteger),
    Column("sha256", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("export_uid", "destination"),
)

# Files sent to Encoura's upload API; keyed by content and name so a re-run never uploads twice.
uploads = Table(
    "uploads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),  # redacted source URL of the file
    Column("name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("product_type", String(32), nullable=False),
    Column("status", String(32), nullable=False),  # claimed | uploaded | <encoura status> | archived
    Column("encoura_file_id", String(128)),
    Column("error", Text),
    Column("archived_to", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(255)),
    Column("claim_expires_at", DateTime(timezone=True)),
    UniqueConstraint("sha256", "name", "product_type", name="uq_upload_content"),
)

# Listing journal: a listing consumes exports at Encoura, so an interrupted one (crash between the
# answer and our insert) must be detectable; the next run then recovers from status=Delivered.
listings = Table(
    "listings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_key", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

# Publish intents: written (under the export's claim) right before a file takes its final name, so a
# run killed after the rename but before `mark_delivered` can be settled by the next run even when
# Slate's importer has already moved the file away. `temp_path` is None for create-only puts (S3),
# where the put itself is the rename. Paths are relative to the destination root.
publish_intents = Table(
    "publish_intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("export_uid", String(128), nullable=False, index=True),
    Column("destination", String(64), nullable=False),
    Column("temp_path", Text),
    Column("final_path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # open | delivered | present | taken | abandoned
    Column("note", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
)
