"""Initial schema: documents, chunks (with FTS5 on SQLite), generations, ingest runs and failures.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("index_info", sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text(), nullable=False))
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False, unique=True),
        sa.Column("doc_key", sa.Text(), nullable=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        sa.Column("added_gen", sa.Integer(), nullable=False),
        sa.Column("removed_gen", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_documents_doc_key", "documents", ["doc_key"])
    op.create_index("ix_documents_removed_gen", "documents", ["removed_gen"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.Integer(), sa.ForeignKey("documents.id"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_line", sa.Integer(), nullable=True),
        sa.Column("end_line", sa.Integer(), nullable=True),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("chunker_version", sa.String(16), nullable=False),
        sa.Column("added_gen", sa.Integer(), nullable=False),
        sa.Column("removed_gen", sa.Integer(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_chunks_document", "chunks", ["document_id"])
    op.create_index("ix_chunks_hash", "chunks", ["content_hash"])
    op.create_index("ix_chunks_added_gen", "chunks", ["added_gen"])
    op.create_index("ix_chunks_removed_gen", "chunks", ["removed_gen"])
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("index_file", sa.Text(), nullable=False),
        sa.Column("index_type", sa.String(16), nullable=False),
        sa.Column("factory", sa.Text(), nullable=False),
        sa.Column("ntotal", sa.Integer(), nullable=False),
        sa.Column("trained_on", sa.Integer(), nullable=False),
        sa.Column("nprobe", sa.Integer(), nullable=False),
        sa.Column("vector_rows", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("stats", sa.Text(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
    )
    op.create_table(
        "ingest_failures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("ingest_runs.id"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_ingest_failures_run_id", "ingest_failures", ["run_id"])
    if op.get_bind().dialect.name == "sqlite":
        # External-content FTS5 over chunk text, kept in step by triggers inside the same transactions.
        op.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, text, content='chunks', content_rowid='id', "
                   "tokenize='porter unicode61 remove_diacritics 2')")
        op.execute("CREATE TRIGGER chunks_fts_ai AFTER INSERT ON chunks BEGIN "
                   "INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END")
        op.execute("CREATE TRIGGER chunks_fts_ad AFTER DELETE ON chunks BEGIN "
                   "INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) "
                   "VALUES ('delete', old.id, old.heading, old.text); END")
        op.execute("CREATE TRIGGER chunks_fts_au AFTER UPDATE OF heading, text ON chunks BEGIN "
                   "INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) "
                   "VALUES ('delete', old.id, old.heading, old.text); "
                   "INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    for t in ("ingest_failures", "ingest_runs", "generations", "chunks", "documents", "index_info"):
        op.drop_table(t)
