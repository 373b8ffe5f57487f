"""Pages that apps ship: the `vireo.pages` entry-point group, beside `vireo.apps` (no Streamlit here).

An entry point's name is the app's name; its value is a callable that draws the app's page, given the
UI's REST client and the app's description from `GET /v1/apps` (name, title, description, input and
output schemas), or an `AppPage` that wraps such a callable with where and how the page is listed.
Vireo's own pages are registered the same way (pyproject.toml), so a third-party app can have a page
as good as theirs; an app without one gets the generic form built from its input schema.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Callable

log = logging.getLogger(__name__)

GROUP = "vireo.pages"
PageRender = Callable[[Any, dict], None]  # (VireoClient, the app's description) -> None; draws the page


@dataclass(frozen=True)
class AppPage:
    """An app's page and how the menu lists it."""

    render: PageRender
    title: str | None = None  # None: the app's own title
    icon: str = ":material/extension:"
    order: int = 100  # place in the menu (Vireo's pages use 10..90; plugins follow unless they ask)
    also_serves: tuple[str, ...] = ()  # companion apps this page drives (they get no page of their own)
    url_path: str | None = None  # None: the app's name


def as_app_page(value: object) -> AppPage | None:
    """An entry point's loaded value as an `AppPage`: one already, or a bare callable; None otherwise."""
    if isinstance(value, AppPage):
        return value
    if callable(value):
        return AppPage(render=value)
    return None


@lru_cache(maxsize=1)
def load_pages() -> dict[str, AppPage]:
    """Every installed app page by app name; a page that fails to load is logged and left out (its app
    falls back to the generic form)."""
    pages: dict[str, AppPage] = {}
    for ep in entry_points(group=GROUP):
        try:
            value = ep.load()
        except Exception:  # one broken plugin must not take the other pages down
            log.exception("could not load the page of app %s (%s); it gets the generic form", ep.name, ep.value)
            continue
        page = as_app_page(value)
        if page is None:
            log.error("page plugin %s -> %s is neither an AppPage nor callable; skipping it", ep.name, ep.value)
            continue
        pages[ep.name] = page
    return pages


def is_diagnostics(app: dict) -> bool:
    """An app for checking the platform rather than for people's tasks (echo): its title says so."""
    return "diagnostic" in (app.get("title") or "").lower()


@dataclass(frozen=True)
class MenuEntry:
    """One app in the menu: its page (None: the generic form), title, icon and URL path."""

    app: dict
    page: AppPage | None
    title: str
    icon: str
    url_path: str
    order: int


GENERIC_ICON = ":material/widgets:"


def menu_entries(
    catalogue: dict[str, dict], pages: dict[str, AppPage], show_diagnostics: bool
) -> tuple[list[MenuEntry], list[MenuEntry]]:
    """The apps' menu entries: (apps with a page of their own, apps on the generic form), each in menu
    order. Diagnostics apps are left out unless asked for; companion apps a page drives are left out."""
    served_by_others = {name for app_name, page in pages.items() if app_name in catalogue for name in page.also_serves}
    own, generic = [], []
    for name, app in catalogue.items():
        if name in served_by_others or (is_diagnostics(app) and not show_diagnostics):
            continue
        title = app.get("title") or name
        page = pages.get(name)
        if page is None:
            generic.append(MenuEntry(app, None, title, GENERIC_ICON, f"app-{name}", 100))
        else:
            own.append(MenuEntry(app, page, page.title or title, page.icon, page.url_path or name, page.order))
    own.sort(key=lambda e: (e.order, e.title.lower()))
    generic.sort(key=lambda e: e.title.lower())
    return own, generic
