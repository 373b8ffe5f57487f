"""RAG: manage collections, add documents (a `rag_ingest` job), ask questions (a `rag` job) with citations."""

from __future__ import annotations

import base64

import streamlit as st

from vireo.ui import session, upload_limit
from vireo.ui.client import ApiError, EndpointMissing
from vireo.ui.form_widgets import form_values
from vireo.ui.forms import FormError, build_input, form_fields
from vireo.ui.job_panel import job_panel, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text, safe_markdown

FILE_TYPES = ["txt", "md", "markdown", "pdf", "html", "htm"]
QUESTION_NAMES = ("question", "query", "q")


def _collections() -> list[str] | None:
    """Collection names, or None when this server has no collections API (the reason is shown)."""
    try:
        listed = session.client().collections()
    except EndpointMissing:
        st.info("This server has no collections API yet; type a collection name below and `rag_ingest` creates it.")
        return None
    except ApiError as exc:
        session.show_error(exc, "listing collections")
        return None
    st.session_state["rag.collections"] = listed
    return [c["name"] if isinstance(c, dict) else str(c) for c in listed]


def _manage(names: list[str] | None) -> None:
    st.subheader("Collections")
    if names is None:
        return
    if names:
        st.dataframe(st.session_state.get("rag.collections") or [{"name": n} for n in names], hide_index=True)
    else:
        st.caption("No collections yet.")
    cols = st.columns(2)
    with cols[0].form("rag.create", border=False, clear_on_submit=True):
        new = st.text_input("New collection", placeholder="handbook")
        if st.form_submit_button("Create") and new.strip():
            if session.call(lambda: session.client().create_collection(new.strip()), "creating") is not None:
                st.rerun()
    with cols[1].form("rag.delete", border=False):
        doomed = st.selectbox("Delete a collection", names, index=None)
        if st.form_submit_button("Delete") and doomed:
            if session.call(lambda: session.client().delete_collection(doomed), "deleting") is not None:
                st.rerun()


def _collection_picker(names: list[str] | None, key: str) -> str:
    if names:
        return st.selectbox("Collection", names, key=key) or ""
    return st.text_input("Collection", key=key).strip()


def _target_picker(names: list[str] | None) -> str:
    """Where documents go: an existing collection, or a new name typed in the same box."""
    if names is None:
        return st.text_input("Collection", key="rag.ingest.collection").strip()
    return (
        st.selectbox(
            "Collection",
            names,
            index=None,
            key="rag.ingest.collection",
            accept_new_options=True,
            placeholder="Choose one, or type a new name",
        )
        or ""
    ).strip()


def _created_if_new(collection: str, names: list[str] | None) -> bool:
    """Create a collection typed as a new name, so a bad name is refused before any upload; False if refused."""
    if names is None or collection in names:
        return True
    try:
        session.client().create_collection(collection)
    except ApiError as exc:
        if exc.status != 409:  # created meanwhile (another tab): add to it
            session.show_error(exc, f"creating collection {collection}")
            return False
    st.toast(f"Created collection {collection}")
    return True


def _documents(files, pasted: str) -> list[dict]:
    docs = [{"filename": f.name, "content_base64": base64.b64encode(f.getvalue()).decode("ascii")} for f in files or []]
    if pasted.strip():
        docs.append({"text": pasted})
    return docs


def _ingest(names: list[str] | None) -> None:
    st.subheader("Add documents")
    if session.require_app("rag_ingest") is None:
        return
    body_limit = session.request_body_limit()
    with st.form("rag.ingest"):
        collection = _target_picker(names)
        files = st.file_uploader(
            "Files",
            type=FILE_TYPES,
            accept_multiple_files=True,
            max_upload_size=upload_limit.uploader_cap_mb(body_limit) if body_limit else None,
        )
        if body_limit:
            st.caption(upload_limit.note(body_limit))
        pasted = st.text_area("…or paste text", height=100)
        submitted = st.form_submit_button("Add to collection")
    if submitted:
        job_input = {"collection": collection, "documents": _documents(files, pasted)}
        too_large = body_limit and upload_limit.too_large("rag_ingest", job_input, body_limit)
        if not collection or not job_input["documents"]:
            st.warning("Choose a collection (or type a new name) and give at least one file or some text.")
        elif too_large:
            st.warning(too_large)
        elif _created_if_new(collection, names):
            start_job("rag.ingest", "rag_ingest", job_input)
    job_panel("rag.ingest")


def _where(cite: dict) -> str:
    where = cite.get("source") or cite.get("filename") or cite.get("doc_id") or cite.get("id") or "source"
    page = f", page {cite['page']}" if cite.get("page") not in (None, "") else ""
    return f"{where}{page}"


@st.dialog("Cited passage", width="large")
def _show_passage(cite: dict) -> None:
    st.markdown(escape_text(f"[{cite.get('number', '?')}] {_where(cite)}"))
    scores = [f"similarity {cite['similarity']:.2f}"] if isinstance(cite.get("similarity"), float) else []
    if isinstance(cite.get("rerank_score"), float):
        scores.append(f"rerank score {cite['rerank_score']:.2f}")
    if cite.get("chunk") is not None:
        scores.append(f"chunk {cite['chunk']}")
    if scores:
        st.caption(" · ".join(scores))
    with st.container(border=True):
        st.markdown(safe_markdown(str(cite.get("text") or cite.get("snippet") or cite.get("content") or "")))


def _citations(result: dict) -> None:
    """The cited passages as numbered buttons: each opens its passage; every passage shown is listed below."""
    cited = result.get("citations") or result.get("sources") or []
    if cited:
        st.markdown("**Citations**")
        cols = st.columns(min(len(cited), 4))
        for number, cite in enumerate(cited, 1):
            if not isinstance(cite, dict):
                cols[(number - 1) % len(cols)].markdown(escape_text(f"[{number}] {cite}"))
                continue
            label = f"[{cite.get('number', number)}] {_where(cite)}"
            if cols[(number - 1) % len(cols)].button(
                label, key=f"rag.cite.{number}", icon=":material/format_quote:", width="stretch"
            ):
                _show_passage(cite)
    passages = result.get("passages") or []
    if passages:
        with st.expander(f"All {len(passages)} passage(s) the model was shown"):
            for cite in passages:
                mark = "cited" if cite.get("cited") else "not cited"
                sim = f" · similarity {cite['similarity']:.2f}" if isinstance(cite.get("similarity"), float) else ""
                st.markdown(escape_text(f"[{cite.get('number', '?')}] {_where(cite)} · {mark}{sim}"))
                st.markdown(safe_markdown(str(cite.get("text") or "")))


def _show_answer(result: dict) -> None:
    if result.get("abstained"):
        reason = escape_text(str(result.get("abstain_reason") or "the documents do not support an answer"))
        st.warning(f"**No answer from these documents.** The model abstained: {reason}.", icon=":material/block:")
    else:
        with st.container(border=True):
            st.markdown(safe_markdown(str(result.get("answer") or "")))
    _citations(result)


def _ask(names: list[str] | None) -> None:
    st.subheader("Ask")
    app = session.require_app("rag")
    if app is None:
        return
    schema = app.get("input_schema") or {}
    question_field = next((n for n in QUESTION_NAMES if n in schema.get("properties", {})), "question")
    # retrieval knobs (k, MMR, rerank, thresholds) come from the app's schema, under "More options"
    extra = [f for f in form_fields(schema) if f.name not in ("collection", question_field)]
    with st.form("rag.ask"):
        collection = _collection_picker(names, "rag.ask.collection")
        question = st.text_area("Question", height=80)
        with st.expander("More options"):
            raw = form_values(extra, "rag.ask")
        submitted = st.form_submit_button("Ask", type="primary")
    if submitted:
        try:
            if not (collection and question.strip()):
                raise FormError("Choose a collection and type a question.")
            start_job("rag.ask", "rag", {"collection": collection, question_field: question, **build_input(extra, raw)})
        except FormError as exc:
            st.warning(str(exc))
    job_panel("rag.ask", main_field="answer", result_view=_show_answer)


def render(client, app: dict) -> None:
    st.title("Ask your documents")
    names = _collections()
    ask, add, manage = st.tabs(["Ask", "Add documents", "Collections"])
    with ask:
        _ask(names)
    with add:
        _ingest(names)
    with manage:
        _manage(names)


PAGE = AppPage(
    render=render, title="Ask your documents", icon=":material/library_books:", order=30, also_serves=("rag_ingest",)
)
