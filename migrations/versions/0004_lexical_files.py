"""BM25 moves out of the database into the lexical index files (llara_search.lexical, `<index>/lexical/`): the
SQLite FTS5 table and its triggers, and PostgreSQL's generated tsvector columns and their GIN index, go. Every
chunk write stops paying for a second full-text index, and both databases rank with the same engine.

An index upgraded from 0003 has no lexical files yet: searches build its current generation in memory from the
rows (once per process, with a warning) until the next ingest or `llara-search doctor --repair` writes them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("chunks_fts_ai", "chunks_fts_ad", "chunks_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_chunks_fts")
        op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS fts_length")
        op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS fts")
        op.execute("DROP FUNCTION IF EXISTS llara_tsvector_length(tsvector)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, text, content='chunks', content_rowid='id', "
                   "tokenize='porter unicode61 remove_diacritics 2')")
        op.execute("INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')")
        op.execute("CREATE TRIGGER chunks_fts_ai AFTER INSERT ON chunks BEGIN "
                   "INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END")
        op.execute("CREATE TRIGGER chunks_fts_ad AFTER DELETE ON chunks BEGIN "
                   "INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) "
                   "VALUES ('delete', old.id, old.heading, old.text); END")
        op.execute("CREATE TRIGGER chunks_fts_au AFTER UPDATE OF heading, text ON chunks BEGIN "
                   "INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) "
                   "VALUES ('delete', old.id, old.heading, old.text); "
                   "INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END")
    elif dialect == "postgresql":
        op.execute("CREATE FUNCTION llara_tsvector_length(tsvector) RETURNS integer LANGUAGE sql IMMUTABLE "
                   "PARALLEL SAFE AS $$ SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer "
                   "FROM unnest($1) $$")
        op.execute("ALTER TABLE chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS "
                   "(to_tsvector('english', heading || ' ' || text)) STORED")
        op.execute("ALTER TABLE chunks ADD COLUMN fts_length integer GENERATED ALWAYS AS "
                   "(llara_tsvector_length(to_tsvector('english', heading || ' ' || text))) STORED")
        op.execute("CREATE INDEX ix_chunks_fts ON chunks USING gin (fts)")
