"""Opening a metadata database: engine settings, automatic Alembic upgrade, and the schema-version guard."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..errors import StoreError, first_line


def migrations_dir() -> Path:
    """Migrations ship inside the wheel as llara_search/_migrations; a checkout has them at the repo root."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here / "_migrations", here.parent / "migrations"):
        if (cand / "env.py").is_file():
            return cand
    raise StoreError("llara-search is installed without its migrations folder; reinstall the package")


def _alembic_config(conn):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = conn
    return cfg


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer and vice versa
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_db_engine(url: str) -> SAEngine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def head_revision() -> str:
    """The schema version this llara-search writes."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def current_revision(engine: SAEngine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def open_database(url: str, *, create: bool = True, upgrade: bool = True) -> SAEngine:
    """Connect, refuse a schema from a newer llara-search, and apply pending migrations.

    Raises StoreError with one line a user can act on for every way this can fail.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    try:
        engine = create_db_engine(url)
        rev = current_revision(engine)
    except SQLAlchemyError as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)  # the driver's words, not SQLAlchemy's wrapper
        raise StoreError(f"cannot open the database {_safe_url(url)}: {reason}") from exc
    except Exception as exc:  # noqa: BLE001 - e.g. a missing DB driver
        raise StoreError(f"cannot open the database {_safe_url(url)}: {type(exc).__name__}: {exc}") from exc
    script = ScriptDirectory.from_config(_alembic_config(None))
    known = {r.revision for r in script.walk_revisions()}
    if rev is not None and rev not in known:
        raise StoreError(
            f"the index database has schema version {rev}, written by a newer llara-search than this one "
            f"(knows up to {script.get_current_head()}); upgrade llara-search to use it"
        )
    if rev is None and not create:
        raise StoreError(f"{_safe_url(url)} is not a llara-search index database (no schema version)")
    if upgrade and rev != script.get_current_head():
        try:
            with engine.begin() as conn:
                command.upgrade(_alembic_config(conn), "head")
        except OperationalError as exc:
            reason = first_line(getattr(exc, "orig", None) or exc)
            raise StoreError(f"cannot migrate the database {_safe_url(url)}: {reason}") from exc
    return engine




def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<database url>"
