"""HTTP serving of an `Engine` (FastAPI): search, batch search, embeddings, health and info."""

from .app import create_app, is_loopback, run_server

__all__ = ["create_app", "is_loopback", "run_server"]
