"""Vertex AI (aiplatform v1 `tuningJobs`, training files staged in Cloud Storage) as a
tuning provider."""

from core.cloud_storage import StorageClient
from worker.vertex.client import VertexClient
from worker.vertex.provider import VertexProvider

__all__ = ["StorageClient", "VertexClient", "VertexProvider"]
