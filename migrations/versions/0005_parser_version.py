"""Documents record the parser version that read them (`llara_search.ingest.parsers.PARSER_VERSION`), so that an
ingest after an upgrade re-parses files whose bytes did not change when the parsers did. Rows from before this
revision have none: the next ingest re-parses them once (chunks whose text is unchanged keep their vectors).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ALTER TABLE ADD COLUMN on both databases: a batch (copy-and-rename) rebuild of `documents` would trip
    # SQLite's foreign keys from `chunks`
    op.add_column("documents", sa.Column("parser_version", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "parser_version")  # SQLite >= 3.35 drops a column in place
