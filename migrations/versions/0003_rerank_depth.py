"""Each generation records how deep its exact re-rank goes (candidates = rerank × k), tuned at build time with
nprobe: a short PQ code that misses the recall target even probing every list reaches it by re-ranking more.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("rerank", sa.Integer(), nullable=False, server_default="10"))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("rerank")
