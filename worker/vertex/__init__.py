"""Vertex AI (aiplatform v1 `tuningJobs`, training files staged in Cloud Storage) as a
tuning provider."""

from worker.vertex.client import VertexClient
from worker.vertex.provider import VertexProvider
from worker.vertex.storage import StorageClient

__all__ = ["StorageClient", "VertexClient", "VertexProvider"]
