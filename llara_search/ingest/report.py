"""What an ingest is told (IngestOptions) and what it reports (IngestReport): plain data, shared by the pipeline,
the watcher, the CLI and the server, apart from the pipeline's machinery."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

DEFAULT_MAX_FILE_MB = 20.0
_BATCH_COUNTERS = ("files_new", "files_changed", "chunks_added", "chunks_encoded", "chunks_removed")


@dataclass
class IngestOptions:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    hidden: bool = False
    follow_symlinks: bool = False  # read symlinks that resolve outside the folders given (walk.py)
    delete_missing: bool = True
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    commit_chunks: int = 256  # chunks encoded per committed batch
    index_type: str | None = None
    index_factory: str | None = None
    batch_size: int | None = None
    encode_ahead: bool | None = None  # encode a batch while the next is parsed (ingest/ahead.py); None: on a GPU


@dataclass
class IngestReport:
    files_seen: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_reparsed: int = 0  # same bytes, read again because the parsers changed since (also in files_changed)
    files_removed: int = 0
    files_skipped: int = 0
    files_failed: list[dict] = field(default_factory=list)  # {"path", "error", "kind"}
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason", "kind"}: left out by a rule
    chunks_added: int = 0
    chunks_encoded: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    documents: int = 0
    generation: int | None = None
    index_type: str | None = None
    vector_rows_dropped: int = 0
    formats: dict[str, int] = field(default_factory=dict)  # live documents per format after this ingest
    warnings: list[dict] = field(default_factory=list)  # {"path", "warning"}: files parsed in this run
    seconds: float = 0.0
    index_warnings: list[str] = field(default_factory=list)  # e.g. a vector index below its recall target
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    estimate: dict | None = None  # the encode forecast made after the first batch (forecast.EncodeEstimate)
    memory: dict | None = None  # the memory check made before the model was loaded (encoder.memory.Estimate)

    @property
    def files_indexed(self) -> int:
        return self.files_new + self.files_changed

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["files_indexed"] = self.files_indexed
        d["stages"] = {k: round(v, 3) for k, v in self.stages.items()}
        d["seconds"] = round(self.seconds, 3)
        return d


__all__ = ["DEFAULT_MAX_FILE_MB", "IngestOptions", "IngestReport"]
