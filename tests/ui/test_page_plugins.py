"""App pages as plugins: the `vireo.pages` entry points, the menu they make, diagnostics apps hidden."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points

from tests.conftest import ROOT
from vireo.apps.registry import load_apps
from vireo.ui.page_plugins import GROUP, AppPage, as_app_page, is_diagnostics, load_pages, menu_entries

CATALOGUE = {name: app.describe() for name, app in load_apps().items()}


def draw(client, app):  # a third-party page: a plain callable
    pass


def test_every_page_in_pyproject_is_installed_and_loads():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    installed = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    assert installed == declared, "the installed entry points are stale: run `pip install -e .` (make install)"
    pages = load_pages()
    assert set(pages) == set(declared)
    assert all(isinstance(page, AppPage) and callable(page.render) for page in pages.values())


def test_each_of_our_apps_has_its_page_and_none_falls_back_to_the_generic_form():
    own, generic = menu_entries(CATALOGUE, load_pages(), show_diagnostics=False)
    assert [e.app["name"] for e in generic] == []  # echo is diagnostics, rag_ingest is the RAG page's
    titles = [e.title for e in own]
    assert titles[:3] == ["Summarize", "Chat", "Ask your documents"]
    assert {"Code", "Translate", "Classify", "Generate", "Judge answers", "Image caption"} <= set(titles)
    assert len({e.url_path for e in own}) == len(own)


def test_diagnostics_apps_are_listed_only_when_asked_for():
    assert is_diagnostics(CATALOGUE["echo"]) and not is_diagnostics(CATALOGUE["chat"])
    hidden = menu_entries(CATALOGUE, load_pages(), show_diagnostics=False)
    shown = menu_entries(CATALOGUE, load_pages(), show_diagnostics=True)
    assert "echo" not in [e.app["name"] for part in hidden for e in part]
    (echo,) = [e for e in shown[1] if e.app["name"] == "echo"]
    assert echo.page is None and echo.url_path == "app-echo"  # the generic form, at its old address


def test_a_plugin_page_is_a_callable_or_an_app_page_and_apps_without_one_get_the_form():
    assert as_app_page(draw) == AppPage(render=draw)
    custom = AppPage(render=draw, title="Headlines", icon=":material/title:", order=5)
    assert as_app_page(custom) is custom
    assert as_app_page("not a page") is None
    catalogue = {
        "headline": {"name": "headline", "title": "Headline"},
        "poem": {"name": "poem", "title": "Poem"},
        "poem_ingest": {"name": "poem_ingest", "title": "Poem corpus"},
    }
    pages = {"headline": custom, "poem": AppPage(render=draw, also_serves=("poem_ingest",))}
    own, generic = menu_entries(catalogue, pages, show_diagnostics=False)
    assert [(e.title, e.url_path, e.order) for e in own] == [("Headlines", "headline", 5), ("Poem", "poem", 100)]
    assert generic == []
    own, generic = menu_entries(catalogue, {}, show_diagnostics=False)
    assert own == [] and [e.url_path for e in generic] == ["app-headline", "app-poem", "app-poem_ingest"]
