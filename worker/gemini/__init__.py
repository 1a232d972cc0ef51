"""The Gemini API (Generative Language API, v1beta `tunedModels`) as a tuning provider."""

from worker.gemini.client import GeminiClient
from worker.gemini.provider import GeminiProvider

__all__ = ["GeminiClient", "GeminiProvider"]
