"""The Vireo web UI (`streamlit run vireo/ui/app.py`): it talks to the REST API only.

Each installed app gets a page: its own, if a package registered one under the `vireo.pages` entry
points (Vireo's apps do, in pyproject.toml), else the generic form built from its input schema."""

from __future__ import annotations

import streamlit as st

from vireo.ui import session
from vireo.ui.page_plugins import MenuEntry, load_pages, menu_entries
from vireo.ui.views import app_form, engine, jobs


def app_page(entry: MenuEntry, default: bool = False) -> st.Page:
    """A navigation entry drawing the app's own page, or its generic form."""
    page, name = entry.page, entry.app["name"]

    def render() -> None:
        if page is None:
            app_form.render_app(name)
            return
        app = session.require_app(name)  # the catalogue is refreshed every 30 s: the app may be gone
        if app is not None:
            page.render(session.client(), app)

    render.__name__ = f"render_{name}"  # Streamlit tells pages apart by their callable's name
    return st.Page(render, title=entry.title, icon=entry.icon, url_path=entry.url_path, default=default)


def navigation() -> st.Page:
    own, generic = menu_entries(session.apps(), load_pages(), session.show_diagnostics())
    tasks = [app_page(entry, default=i == 0) for i, entry in enumerate(own)]
    system = [
        st.Page(jobs.render, title="Jobs", icon=":material/list_alt:", url_path="jobs", default=not tasks),
        st.Page(engine.render, title="Engine", icon=":material/memory:", url_path="engine"),
    ]
    sections = {
        **({"Tasks": tasks} if tasks else {}),
        "System": system,
        **({"More apps": [app_page(entry) for entry in generic]} if generic else {}),
    }
    # every entry in sight: a collapsed menu would hide whatever comes after its tenth entry
    return st.navigation(sections, expanded=True)


def main() -> None:
    st.set_page_config(page_title="Vireo", page_icon=":material/flutter_dash:", layout="wide")
    session.connection_sidebar()
    navigation().run()


main()
