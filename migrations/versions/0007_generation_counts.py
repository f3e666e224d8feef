"""Visibility by generation answered from an index alone: `(added_gen, removed_gen)` on chunks and documents.

`status` counts the documents and chunks a generation sees; with a million chunks a count that reads every row (the
text is stored inline) takes seconds, while one over this covering index reads a few megabytes. The chunks' index
replaces `ix_chunks_added_gen`, which is its prefix.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chunks_gens", "chunks", ["added_gen", "removed_gen"])
    op.drop_index("ix_chunks_added_gen", "chunks")
    op.create_index("ix_documents_gens", "documents", ["added_gen", "removed_gen"])


def downgrade() -> None:
    op.drop_index("ix_documents_gens", "documents")
    op.create_index("ix_chunks_added_gen", "chunks", ["added_gen"])
    op.drop_index("ix_chunks_gens", "chunks")
