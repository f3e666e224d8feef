"""PostgreSQL full-text search: a generated tsvector of each chunk's heading and text (GIN-indexed) and its
length in words, from which llara_search.store.fulltext computes BM25.

On SQLite the FTS5 table of 0001 already does this job; there this revision changes nothing. A generated column
is computed by PostgreSQL in the same statement that writes the row, so, like FTS5 with its triggers, it can
never disagree with the chunk text.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # BM25 needs each chunk's length in words: the number of lexeme positions of its tsvector
    op.execute("CREATE FUNCTION llara_tsvector_length(tsvector) RETURNS integer LANGUAGE sql IMMUTABLE "
               "PARALLEL SAFE AS $$ SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer "
               "FROM unnest($1) $$")
    op.execute("ALTER TABLE chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS "
               "(to_tsvector('english', heading || ' ' || text)) STORED")
    op.execute("ALTER TABLE chunks ADD COLUMN fts_length integer GENERATED ALWAYS AS "
               "(llara_tsvector_length(to_tsvector('english', heading || ' ' || text))) STORED")
    op.execute("CREATE INDEX ix_chunks_fts ON chunks USING gin (fts)")
    # `--where` globs become anchored regular expressions on document paths
    op.execute("CREATE INDEX ix_documents_path ON documents (path text_pattern_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_documents_path")
    op.execute("DROP INDEX IF EXISTS ix_chunks_fts")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS fts_length")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS fts")
    op.execute("DROP FUNCTION IF EXISTS llara_tsvector_length(tsvector)")
