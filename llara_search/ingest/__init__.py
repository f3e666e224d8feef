"""Ingestion: walking folders, parsers per format, chunking, incremental sync into the store and the index."""
