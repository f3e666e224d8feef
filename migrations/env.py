"""Alembic environment: runs on the connection llara-search hands it (indexes migrate themselves on open)."""

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    context.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # developer use through alembic.ini
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
