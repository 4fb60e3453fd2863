"""aisg_pipelines: the data-governance control plane for AISG's RAG store."""

__version__ = "0.1.0"
