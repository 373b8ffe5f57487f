"""Image caption: a photo from the camera or a file; the picture with the detected objects boxed and
labelled, the caption, its alt text and the text read in it. The vision path is a choice only where the
server has more than one: a vision-language model needs a worker on the openai backend."""

from __future__ import annotations

import base64

import streamlit as st

from vireo.ui import session, upload_limit
from vireo.ui.form_widgets import IMAGE_TYPES
from vireo.ui.forms import field_help
from vireo.ui.image_boxes import draw_boxes, load_picture
from vireo.ui.job_panel import current_job, job_panel, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text

SLOT = "caption"
COMPOSED, VLM = "composed", "vlm"
PATHS = {
    COMPOSED: "Built-in vision models, worded by the LLM",
    VLM: "A vision-language model (sees the picture itself)",
}
MADE_BY = {
    "llm_from_facts": "the LLM, from the facts the vision models found",
    "template_fallback": "a template: the LLM's caption named things the vision models did not see",
    "template": "a template, from the facts the vision models found",
    "vlm": "the vision-language model",
}


def vlm_available(models: list[dict]) -> bool:
    """A vision-language model can run only on a worker of the openai backend (a VLM server behind it)."""
    return any("openai" in (m.get("backends") or []) for m in models)


def _picture() -> tuple[str, bytes] | None:
    source = st.segmented_control(
        "Picture",
        ["upload", "camera"],
        format_func=lambda source: "Upload a file" if source == "upload" else "Take a photo",
        default="upload",
        required=True,
        key=f"{SLOT}.source",
    )
    if source == "camera":
        shot = st.camera_input("Take a photo", key=f"{SLOT}.camera")
        return ("camera.jpg", shot.getvalue()) if shot else None
    limit = session.request_body_limit()
    upload = st.file_uploader(
        "Image file",
        type=IMAGE_TYPES,
        key=f"{SLOT}.file",
        max_upload_size=upload_limit.uploader_cap_mb(limit) if limit else None,
    )
    if limit:
        st.caption(upload_limit.note(limit))
    return (upload.name, upload.getvalue()) if upload else None


def show_caption(result: dict, picture: bytes | None) -> None:
    objects = result.get("objects") or []
    cols = st.columns([3, 2], gap="medium")
    with cols[0]:
        if picture:
            try:
                image = load_picture(picture)
            except OSError:
                st.caption("The picture cannot be shown here.")
            else:
                boxed = draw_boxes(image, objects)
                found = ", ".join(
                    f"{o['label']} ×{o['count']}" if o.get("count", 1) > 1 else o["label"] for o in objects
                )
                st.image(boxed, width="stretch", caption=escape_text(found) if found else "No objects detected")
    with cols[1]:
        st.markdown(f"### {escape_text(result.get('caption') or '')}")
        st.caption(escape_text(f"Written by {MADE_BY.get(result.get('path', ''), result.get('path', '?'))}."))
        st.markdown("**Alt text**")
        st.code(result.get("alt_text") or "", language="text", wrap_lines=True)
        if result.get("text_found"):
            st.markdown("**Text in the picture**")
            st.code("\n".join(result["text_found"]), language="text", wrap_lines=True)
        if result.get("tags"):
            st.markdown("**Tags** " + escape_text(" · ".join(result["tags"])))
        if objects:
            st.dataframe(
                [
                    {"object": o["label"], "count": o.get("count", 1), "confidence": o.get("confidence", 0.0)}
                    for o in objects
                ],
                column_config={
                    "confidence": st.column_config.ProgressColumn(
                        "confidence", min_value=0.0, max_value=1.0, format="%.2f"
                    )
                },
                hide_index=True,
                width="stretch",
            )
        if result.get("invented_objects"):
            st.info(
                escape_text(
                    f"The LLM's caption ({result.get('rejected_caption')!r}) named "
                    f"{', '.join(result['invented_objects'])}, which the vision models did not find; "
                    "the template caption replaced it."
                )
            )


def render(client, app: dict) -> None:
    st.title("Image caption")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    left, right = st.columns([2, 3], gap="medium")
    with left:
        picture = _picture()
        paths = [COMPOSED, *([VLM] if vlm_available(session.models() or client.models()) else [])]
        if len(paths) > 1:
            path = st.radio(
                "How to caption",
                paths,
                format_func=PATHS.get,
                key=f"{SLOT}.path",
                help=field_help(schema, "vision_model"),
            )
        else:
            path = COMPOSED
            st.caption(
                "Captioned by the built-in vision models, worded by the LLM. (A vision-language model that sees "
                "the picture itself needs a worker on the openai backend; this server has none.)"
            )
        job: dict = {}
        if path == VLM:
            job["vision_model"] = st.text_input(
                "Vision-language model", key=f"{SLOT}.vlm", help=field_help(schema, "vision_model")
            ).strip()
        else:
            job["use_llm"] = st.toggle(
                "Let the LLM word the caption", value=True, key=f"{SLOT}.llm", help=field_help(schema, "use_llm")
            )
            job["read_text"] = st.toggle(
                "Read text in the picture (OCR)", value=True, key=f"{SLOT}.ocr", help=field_help(schema, "read_text")
            )
        style = st.text_input(
            "Style (optional)", key=f"{SLOT}.style", placeholder="for a news site", help=field_help(schema, "style")
        ).strip()
        go = st.button("Caption", type="primary", key=f"{SLOT}.go")
    shown = st.session_state.get(f"{SLOT}.picture.{current_job(SLOT)}")
    with right:
        if picture and picture[1] != shown:  # the result below shows the captioned picture itself
            st.image(picture[1], width="stretch", caption=escape_text(picture[0]))
    if go:
        if picture is None:
            st.warning("Upload a picture or take a photo first.")
        elif path == VLM and not job.get("vision_model"):
            st.warning("Name the vision-language model.")
        else:
            job = {"image_base64": base64.b64encode(picture[1]).decode("ascii"), **job}
            if style:
                job["style"] = style
            limit = session.request_body_limit()
            too_large = limit and upload_limit.too_large("caption", job, limit)
            if too_large:
                st.warning(too_large)
            elif start_job(SLOT, "caption", job):
                st.session_state[f"{SLOT}.picture.{current_job(SLOT)}"] = picture[1]
                shown = picture[1]
    job_panel(SLOT, main_field="caption", result_view=lambda result: show_caption(result, shown))


PAGE = AppPage(render=render, icon=":material/image:", order=70)
