"""One module per format family; `llara_search.ingest.parsers` chooses among them (the only dispatch)."""
