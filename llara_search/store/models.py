"""SQLAlchemy 2.0 models of an index's metadata.

Visibility is by generation: a chunk row is part of generation g when `added_gen <= g` and it was not removed at or
before g. An ingest writes rows tagged with the generation it is building, and they become visible only when the
row in `generations` that names it is committed together with the FAISS file that covers them. Readers pin the
latest committed generation, so they see the old state or the new one, never a mix.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class IndexInfo(Base):
    """Key/value facts about the index: model, adapter, fingerprint, dimension, chunking settings."""

    __tablename__ = "index_info"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_gens", "added_gen", "removed_gen"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # absolute POSIX path, or "beir:<id>" for BEIR docs
    doc_key: Mapped[str | None] = mapped_column(Text, index=True)  # external id (BEIR _id)
    format: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    parser_version: Mapped[str | None] = mapped_column(String(16), nullable=True)  # PARSER_VERSION that read it
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    added_gen: Mapped[int] = mapped_column(Integer)
    removed_gen: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    chunks: Mapped[list["Chunk"]] = relationship(back_populates="document")


class Chunk(Base):
    """One passage. Its integer id is THE id: FTS rowid, stored-vector key and FAISS id."""

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_document", "document_id"),
        Index("ix_chunks_hash", "content_hash"),
        Index("ix_chunks_gens", "added_gen", "removed_gen"),  # visibility counts from the index alone
        Index("ix_chunks_removed_gen", "removed_gen"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    ordinal: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    start_line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    end_line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    char_start: Mapped[int] = mapped_column(Integer, default=0)
    char_end: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_tokens: Mapped[int] = mapped_column(Integer, default=0)
    chunker_version: Mapped[str] = mapped_column(String(16))
    added_gen: Mapped[int] = mapped_column(Integer)
    removed_gen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    probe: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # collapse.probe(text); migration 0008
    document: Mapped[Document] = relationship(back_populates="chunks")


class Generation(Base):
    """A committed state of the index: the FAISS file that covers exactly the chunks visible at this generation."""

    __tablename__ = "generations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    index_file: Mapped[str] = mapped_column(Text)
    index_type: Mapped[str] = mapped_column(String(16))
    factory: Mapped[str] = mapped_column(Text)
    ntotal: Mapped[int] = mapped_column(Integer)
    trained_on: Mapped[int] = mapped_column(Integer, default=0)
    nprobe: Mapped[int] = mapped_column(Integer, default=0)
    rerank: Mapped[int] = mapped_column(Integer, default=10)  # exact re-rank depth: candidates = rerank × k
    vector_rows: Mapped[int] = mapped_column(BigInteger, default=0)  # stored-vector rows readers may map
    fingerprint: Mapped[str] = mapped_column(String(64))


class IngestRun(Base):
    __tablename__ = "ingest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer)
    stats: Mapped[str] = mapped_column(Text, default="{}")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class IngestFailure(Base):
    __tablename__ = "ingest_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)


class FileNote(Base):
    """A file the last file-walking ingest of its folder skipped or could not read, with the reason: what `status
    --files` (and a search page) show again after the ingest report scrolled away. Each ingest replaces the notes
    under the folders it walked."""

    __tablename__ = "file_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, index=True)  # stored form (pathnames.to_stored)
    state: Mapped[str] = mapped_column(String(16))  # "skipped" | "failed"
    reason: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    noted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
