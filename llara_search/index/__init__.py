"""Vector index: FAISS (flat | IVF-PQ) over chunk ids, float16 stored vectors, generation files on disk."""

from .ann import INDEX_TYPES, AnnIndex, IndexPlan, gpu_available, plan_index
from .vectors import VectorStore

__all__ = ["INDEX_TYPES", "AnnIndex", "IndexPlan", "VectorStore", "gpu_available", "plan_index"]
