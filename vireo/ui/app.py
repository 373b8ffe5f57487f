"""The Vireo web UI (`streamlit run vireo/ui/app.py`): it talks to the REST API only."""

from __future__ import annotations

import streamlit as st

from vireo.ui import session
from vireo.ui.views import app_form, chat, engine, jobs, rag, summarize

# apps with a page of their own; every other installed app gets a generic form page
DEDICATED = {"summarize", "chat", "rag", "rag_ingest"}


def navigation() -> st.Page:
    tasks = [
        st.Page(summarize.render, title="Summarize", icon=":material/summarize:", url_path="summarize", default=True),
        st.Page(chat.render, title="Chat", icon=":material/chat:", url_path="chat"),
        st.Page(rag.render, title="Ask your documents", icon=":material/library_books:", url_path="rag"),
    ]
    generic = [app_form.page_for(app) for name, app in session.apps().items() if name not in DEDICATED]
    system = [
        st.Page(jobs.render, title="Jobs", icon=":material/list_alt:", url_path="jobs"),
        st.Page(engine.render, title="Engine", icon=":material/memory:", url_path="engine"),
    ]
    # the fixed sections first: Streamlit shows ten entries of a long menu (and "View more"), so pages that
    # plugins add go last, where they cannot push Jobs and Engine out of sight
    sections = {"Tasks": tasks, "System": system, **({"More apps": generic} if generic else {})}
    return st.navigation(sections)


def main() -> None:
    st.set_page_config(page_title="Vireo", page_icon=":material/flutter_dash:", layout="wide")
    session.connection_sidebar()
    navigation().run()


main()
