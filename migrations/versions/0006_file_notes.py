"""The files the last ingest of each folder skipped or could not read (`file_notes`), kept so that `status --files`
and the search page can show them after the ingest report is gone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("noted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_file_notes_path", "file_notes", ["path"])


def downgrade() -> None:
    op.drop_index("ix_file_notes_path", table_name="file_notes")
    op.drop_table("file_notes")
