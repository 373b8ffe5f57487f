"""Generate: a template, its variables (from the app's schema), tone and length, and several variants
written at once, shown side by side."""

from __future__ import annotations

import streamlit as st

from vireo.ui.forms import field_bounds, field_default, field_help, resolve
from vireo.ui.job_panel import job_panel, start_job
from vireo.ui.labels import humanize
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import safe_markdown

SLOT = "generate"
TEMPLATE_NAMES = {
    "ad_copy": "Ad copy",
    "product_description": "Product description",
    "story": "Story",
    "script": "Script",
    "email": "Email",
    "custom": "Anything (your brief)",
}
PER_ROW = 3


def _property(schema: dict, name: str) -> dict:
    node = schema.get("properties", {}).get(name)
    return resolve(schema, node) if node else {}


def template_variables(schema: dict) -> dict[str, dict[str, list[str]]]:
    """Each template's required and optional variables (the schema's `x-variables`)."""
    return dict(_property(schema, "template").get("x-variables") or {})


def _variables(schema: dict, template: str) -> tuple[dict[str, str], list[str]]:
    """The template's variable fields; returns (values given, required ones missing)."""
    spec = template_variables(schema).get(template, {"required": [], "optional": []})
    values, missing = {}, []
    names = [*spec.get("required", []), *spec.get("optional", [])]
    cols = st.columns(2) if names else []
    for number, name in enumerate(names):
        required = name in spec.get("required", [])
        label = humanize(name) + ("" if required else " (optional)")
        value = cols[number % 2].text_input(label, key=f"{SLOT}.var.{template}.{name}").strip()
        if value:
            values[name] = value
        elif required:
            missing.append(humanize(name).lower())
    return values, missing


def show_variants(result: dict) -> None:
    variants = result.get("variants") or []
    per_row = max(1, min(PER_ROW, len(variants)))
    for start in range(0, len(variants), per_row):
        row = variants[start : start + per_row]
        for number, (column, variant) in enumerate(zip(st.columns(per_row), row), start + 1):
            with column.container(border=True):
                st.markdown(f"**Variant {number}**")
                st.markdown(safe_markdown(variant.get("text") or ""))
                cut = " · cut at the length limit" if variant.get("finish_reason") == "length" else ""
                st.caption(f"seed {variant.get('seed')} · {variant.get('completion_tokens', 0)} tokens{cut}")
    with st.expander("The brief the model was given"):
        st.markdown(safe_markdown(result.get("brief") or ""))


def render(client, app: dict) -> None:
    st.title("Generate")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    templates = list(_property(schema, "template").get("enum") or TEMPLATE_NAMES)
    template = (
        st.segmented_control(
            "Template",
            templates,
            format_func=lambda t: TEMPLATE_NAMES.get(t, humanize(t)),
            default="product_description" if "product_description" in templates else templates[0],
            required=True,
            key=f"{SLOT}.template",
            help=field_help(schema, "template"),
        )
        or templates[0]
    )
    variables, missing = _variables(schema, template)
    instructions = st.text_area(
        "Your brief" if template == "custom" else "Extra instructions (optional)",
        key=f"{SLOT}.instructions",
        height=100 if template == "custom" else 68,
        help=field_help(schema, "instructions"),
    ).strip()
    cols = st.columns(5)
    tone = cols[0].selectbox(
        "Tone", _property(schema, "tone").get("enum") or ["neutral"], format_func=humanize, key=f"{SLOT}.tone"
    )
    length = cols[1].selectbox(
        "Length",
        _property(schema, "length").get("enum") or ["medium"],
        index=1,
        format_func=humanize,
        key=f"{SLOT}.length",
    )
    low, high = field_bounds(schema, "n")
    n = cols[2].number_input(
        "Variants", int(low or 1), int(high or 8), 3, key=f"{SLOT}.n", help=field_help(schema, "n")
    )
    temperature = cols[3].slider(
        "Variety (temperature)",
        0.05,
        2.0,
        float(field_default(schema, "temperature", 0.7)),
        0.05,
        key=f"{SLOT}.temperature",
        help=field_help(schema, "temperature"),
    )
    seed = cols[4].number_input(
        "Seed (optional)", value=None, step=1, key=f"{SLOT}.seed", help=field_help(schema, "seed")
    )
    if st.button("Write", type="primary", key=f"{SLOT}.go"):
        if missing:
            st.warning(f"Fill in: {', '.join(missing)}.")
        elif template == "custom" and not instructions:
            st.warning("Write the brief: what should the text be?")
        else:
            job = {
                "template": template,
                "variables": variables,
                "tone": tone,
                "length": length,
                "n": int(n),
                "temperature": temperature,
                **({"instructions": instructions} if instructions else {}),
                **({"seed": int(seed)} if seed is not None else {}),
            }
            start_job(SLOT, "generate", job)
    job_panel(SLOT, result_view=show_variants)


PAGE = AppPage(render=render, icon=":material/edit_note:", order=50)
