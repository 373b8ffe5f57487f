"""Process-wide services that apps use (configured once from settings, in the API and the worker)."""

from __future__ import annotations

from vireo.platform.settings import Settings


def configure_app_services(settings: Settings) -> None:
    """Point the RAG collection store at the Vireo home's Chroma folder or a Chroma server."""
    from vireo.apps.rag.store import configure_store

    configure_store(path=settings.home / "chroma", url=settings.chroma_url)
