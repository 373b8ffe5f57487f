"""Process-wide services that apps use (configured once from settings, in the API and the worker)."""

from __future__ import annotations

from vireo.platform.settings import Settings


def configure_app_services(settings: Settings) -> None:
    """Point the RAG collection store at the Vireo home's Chroma folder or a Chroma server, and the
    code sandbox at its mode (bubblewrap, the sandbox service, or an operator's unsafe opt-in)."""
    from vireo.apps.rag.store import configure_store
    from vireo.apps.sandbox import configure_sandbox

    configure_store(path=settings.home / "chroma", url=settings.chroma_url)
    configure_sandbox(settings.sandbox, socket=settings.sandbox_socket, python=settings.sandbox_python)
