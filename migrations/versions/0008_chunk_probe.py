"""Chunks store what near-copy collapsing looks up (`llara_search.collapse.probe`: hashes of the text and of its
windows), computed once at ingest instead of on every search. Rows from before this revision have none; searches
compute it from their text, as before, until they are stored again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chunks", sa.Column("probe", sa.LargeBinary(), nullable=True))  # ALTER TABLE ADD COLUMN in place


def downgrade() -> None:
    op.drop_column("chunks", "probe")
