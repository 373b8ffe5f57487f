"""Classify: your labels (an editor) or a preset; one text, or a CSV/JSONL upload of many; the label with a
probability bar per label, or a results table, a chart of label counts and the labelled file to download."""

from __future__ import annotations

import streamlit as st

from vireo.ui.charts import label_bars
from vireo.ui.forms import field_help, resolve
from vireo.ui.job_panel import current_job, job_panel, start_job
from vireo.ui.labelled_table import csv_columns, jsonl_fields, label_counts, labelled_csv, labelled_jsonl
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text

SLOT = "classify"
OWN = "own"  # the label-set choice "my own labels"
PRESET_NAMES = {
    "sentiment": "Sentiment",
    "spam": "Spam",
    "news_topic": "News topic",
    "feedback": "Customer feedback",
    "nli": "Entailment (two texts)",
}
STARTER_LABELS = [
    {"label": "billing", "description": "charges, invoices, refunds"},
    {"label": "bug report", "description": "something is broken"},
    {"label": "praise", "description": "the customer is happy"},
]


def presets(schema: dict) -> list[str]:
    node = schema.get("properties", {}).get("preset")
    return [p for p in (resolve(schema, node).get("enum") or []) if p] if node else list(PRESET_NAMES)


def _label_set(schema: dict) -> tuple[dict, bool]:
    """The label part of the input ({"preset": …} or {"labels": […]}) and whether it compares two texts."""
    choice = st.selectbox(
        "Labels",
        [OWN, *presets(schema)],
        format_func=lambda p: "My own labels" if p == OWN else f"Preset: {PRESET_NAMES.get(p, p)}",
        key=f"{SLOT}.preset",
        help=field_help(schema, "preset"),
    )
    if choice != OWN:
        return {"preset": choice}, choice == "nli"
    rows = st.data_editor(
        STARTER_LABELS,
        num_rows="dynamic",
        column_config={
            "label": st.column_config.TextColumn("Label", required=True, max_chars=80),
            "description": st.column_config.TextColumn("What it means (optional)", max_chars=300),
        },
        key=f"{SLOT}.labels",
        width="stretch",
    )
    labels = []
    for row in rows:
        name = str(row.get("label") or "").strip()
        if name:
            description = str(row.get("description") or "").strip()
            labels.append({"name": name, **({"description": description} if description else {})})
    return {"labels": labels}, False


def _texts(schema: dict, pair: bool) -> tuple[dict, dict] | None:
    """The texts part of the input and what the result view needs; None when nothing is given yet."""
    mode = st.segmented_control(
        "Classify",
        ["one", "many"],
        format_func=lambda mode: "One text" if mode == "one" else "Many texts (CSV or JSONL)",
        default="one",
        required=True,
        key=f"{SLOT}.mode",
    )
    if mode != "many":
        text = st.text_area(
            "Premise" if pair else "Text", key=f"{SLOT}.text", height=140, help=field_help(schema, "text")
        )
        extra = {}
        if pair:
            extra["pair"] = st.text_area("Hypothesis", key=f"{SLOT}.pair", height=80, help=field_help(schema, "pair"))
        return ({"text": text, **extra}, {}) if text.strip() else None
    upload = st.file_uploader(
        "A CSV file with a header, or JSON lines",
        type=["csv", "jsonl"],
        key=f"{SLOT}.file",
        help=field_help(schema, "data"),
    )
    if upload is None:
        return None
    data = upload.getvalue().decode("utf-8-sig", errors="replace")
    fmt = "jsonl" if upload.name.lower().endswith(".jsonl") else "csv"
    columns = csv_columns(data) if fmt == "csv" else jsonl_fields(data)
    cols = st.columns(2)
    guess = next((c for c in columns if c.lower() in ("text", "review", "message", "body", "content")), None)
    text_field = (
        cols[0].selectbox(
            "Column holding the text", columns, index=columns.index(guess) if guess else 0, key=f"{SLOT}.column"
        )
        if columns
        else "text"
    )
    fields = {"data": data, "data_format": fmt, "text_field": text_field}
    if pair and columns:
        fields["pair_field"] = cols[1].selectbox("Column holding the hypothesis", columns, key=f"{SLOT}.pair_column")
    return fields, {"data": data, "format": fmt, "name": upload.name}


def show_single(result: dict) -> None:
    chosen = result.get("labels") or [result.get("label")]
    top = next((s for s in result.get("scores", []) if s["label"] == result.get("label")), None)
    confidence = f" · {top['probability']:.0%}" if top else ""
    st.markdown(f"### {escape_text(', '.join(str(c) for c in chosen))}{confidence}")
    scores = result.get("scores") or []
    if scores:
        label_bars(
            [{"label": s["label"], "probability": s["probability"]} for s in scores],
            "label",
            "probability",
            "Probability of each label",
            sort="-probability",
        )
    st.caption(escape_text(result.get("method") or ""))


def show_batch(result: dict, upload: dict) -> None:
    results = result.get("results") or []
    counts = result.get("counts") or {}
    st.markdown(f"**{len(results)} texts labelled**")
    label_bars(label_counts(results, list(counts)), "label", "texts", "How many texts got each label")
    st.dataframe(
        [
            {
                "#": r["index"] + 1,
                "text": r["text"],
                "label": r["label"],
                "labels": ", ".join(r["labels"]),
                "probability": r["probability"],
            }
            for r in results
        ],
        column_config={
            "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.2f")
        },
        hide_index=True,
        width="stretch",
    )
    if upload:
        joined = (labelled_jsonl if upload["format"] == "jsonl" else labelled_csv)(upload["data"], results)
        stem = upload["name"].rsplit(".", 1)[0]
        st.download_button(
            "Download the labelled file",
            joined,
            file_name=f"{stem}.labelled.{upload['format']}",
            mime="text/csv" if upload["format"] == "csv" else "application/jsonl",
            key=f"{SLOT}.download",
            icon=":material/download:",
        )
    st.caption(escape_text(result.get("method") or ""))


def show_result(result: dict, upload: dict) -> None:
    if result.get("label") is not None and not result.get("csv"):
        show_single(result)
    else:
        show_batch(result, upload)


def render(client, app: dict) -> None:
    st.title("Classify")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    left, right = st.columns([2, 3], gap="medium")
    with left:
        label_part, pair = _label_set(schema)
        with st.expander("More options"):
            instructions = st.text_input(
                "What the classification is about (optional)",
                key=f"{SLOT}.instructions",
                help=field_help(schema, "instructions"),
            )
            multi = st.toggle(
                "Several labels per text", key=f"{SLOT}.multi", help="Keep every label above the threshold."
            )
            threshold = st.slider(
                "Threshold",
                0.05,
                0.95,
                0.5,
                0.05,
                key=f"{SLOT}.threshold",
                disabled=not multi,
                help=field_help(schema, "threshold"),
            )
            calibrate = st.toggle(
                "Calibrate", value=True, key=f"{SLOT}.calibrate", help=field_help(schema, "calibrate")
            )
    with right:
        texts = _texts(schema, pair)
        go = st.button("Classify", type="primary", key=f"{SLOT}.go")
    if go:
        if texts is None:
            st.warning("Give a text, or upload a file of texts.")
        elif "labels" in label_part and len(label_part["labels"]) < 2:
            st.warning("Give at least two labels.")
        else:
            fields, upload = texts
            job = {**fields, **label_part, "calibrate": calibrate, "multi_label": multi}
            if multi:
                job["threshold"] = threshold
            if instructions.strip():
                job["instructions"] = instructions.strip()
            if start_job(SLOT, "classify", job):
                st.session_state[f"{SLOT}.upload.{current_job(SLOT)}"] = upload
    upload = st.session_state.get(f"{SLOT}.upload.{current_job(SLOT)}", {})
    job_panel(SLOT, result_view=lambda result: show_result(result, upload))


PAGE = AppPage(render=render, icon=":material/label:", order=45)
