"""Map an app's input JSON schema to form fields, and form values back to an input (no Streamlit here)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from vireo.ui.labels import field_label

# string fields whose content is long prose or code get a text area rather than a one-line input
LONG_TEXT_HINTS = (
    "text",
    "document",
    "content",
    "prompt",
    "code",
    "source",
    "body",
    "context",
    "system",
    "instruction",
    "question",
    "passage",
)
MAIN_TEXT_NAMES = (
    "summary",
    "text",
    "answer",
    "translation",
    "caption",
    "code",
    "completion",
    "output",
    "content",
    "result",
)


class FormError(ValueError):
    """A form value that cannot become the field's type; names the field."""


@dataclass(frozen=True)
class FormField:
    """One input of an app's form: which widget shows it and how its value is read back."""

    name: str
    label: str
    widget: str  # text | textarea | select | integer | number | checkbox | lines | json | file | files
    required: bool = False
    default: Any = None
    help: str = ""
    options: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    item_type: str = "string"  # for `lines`: the type of each line


def resolve(schema: dict, node: dict) -> dict:
    """Follow a local `$ref` and unwrap `Optional[X]` (anyOf X | null) to X."""
    while True:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = {**schema.get("$defs", {}).get(name, {}), **{k: v for k, v in node.items() if k != "$ref"}}
            continue
        choices = [c for c in node.get("anyOf", node.get("oneOf", [])) if c.get("type") != "null"]
        if len(choices) == 1:
            outer = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            node = {**choices[0], **outer}
            continue
        if "allOf" in node and len(node["allOf"]) == 1:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
            continue
        return node


def _looks_like_file(name: str, node: dict) -> bool:
    """A string holding a file's bytes, base64-encoded: said by the schema, the name or the description."""
    if node.get("contentEncoding") == "base64" or node.get("format") in ("base64", "binary"):
        return True
    name = name.lower()
    return "base64" in name or name.endswith("_b64") or "base64" in node.get("description", "").lower()


def _string_widget(name: str, node: dict) -> str:
    if _looks_like_file(name, node):
        return "file"
    limit = node.get("maxLength")
    if limit is not None and limit <= 300:
        return "text"
    if limit is not None and limit > 1000:
        return "textarea"
    return "textarea" if any(h in name.lower() for h in LONG_TEXT_HINTS) else "text"


def file_label(label: str) -> str:
    """'Image Base64' → 'Image': a person uploads a file; the encoding is the form's business."""
    return re.sub(r"[\s_]*(base64|b64)$", "", label, flags=re.IGNORECASE) or label


def _bounds(node: dict, integer: bool) -> tuple[float | None, float | None]:
    low, high = node.get("minimum"), node.get("maximum")
    step = 1 if integer else 0
    if low is None and "exclusiveMinimum" in node:
        low = node["exclusiveMinimum"] + step
    if high is None and "exclusiveMaximum" in node:
        high = node["exclusiveMaximum"] - step
    return low, high


def field_for(schema: dict, name: str, raw: dict, required: bool) -> FormField:
    """The form field for one schema property."""
    node = resolve(schema, raw)
    kind = node.get("type")
    common = dict(
        name=name,
        label=field_label(name, raw.get("title")),
        required=required,
        default=node.get("default"),
        help=node.get("description", ""),
    )
    if "enum" in node or "const" in node:
        return FormField(widget="select", options=tuple(node.get("enum", [node.get("const")])), **common)
    if kind == "string":
        widget = _string_widget(name, node)
        if widget == "file":
            common["label"] = file_label(common["label"])
        return FormField(widget=widget, **common)
    if kind in ("integer", "number"):
        low, high = _bounds(node, kind == "integer")
        return FormField(widget=kind, minimum=low, maximum=high, **common)
    if kind == "boolean":
        return FormField(widget="checkbox", **common)
    if kind == "array":
        items = resolve(schema, node.get("items", {}))
        if items.get("type") == "string" and _looks_like_file(name, items):
            return FormField(widget="files", **{**common, "label": file_label(common["label"])})
        if items.get("type") in ("string", "integer", "number") and "enum" not in items:
            return FormField(widget="lines", item_type=items["type"], **common)
    return FormField(widget="json", **common)


def form_fields(schema: dict) -> list[FormField]:
    """Every property of an object schema as a form field, in the schema's order."""
    required = set(schema.get("required", []))
    return [field_for(schema, name, node, name in required) for name, node in schema.get("properties", {}).items()]


def _line_value(line: str, item_type: str, name: str) -> Any:
    try:
        return {"integer": int, "number": float}.get(item_type, str)(line)
    except ValueError:
        raise FormError(f"{name}: {line!r} is not a {item_type}") from None


def parse_value(field: FormField, raw: Any) -> Any:
    """A widget's raw value as the JSON value the API expects; None means "leave it out"."""
    if field.widget in ("text", "textarea", "file"):
        return raw if raw not in (None, "") else None
    if field.widget == "lines":
        lines = [line.strip() for line in (raw or "").splitlines() if line.strip()]
        return [_line_value(line, field.item_type, field.name) for line in lines] if lines else None
    if field.widget == "files":
        return list(raw) if raw else None
    if field.widget == "json":
        if raw is None or not str(raw).strip():
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FormError(f"{field.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return raw  # select, integer, number, checkbox already have their type


def build_input(fields: list[FormField], raw_values: dict[str, Any]) -> dict[str, Any]:
    """The job input from widget values: empty optional fields are left to the app's defaults."""
    values = {}
    for field in fields:
        value = parse_value(field, raw_values.get(field.name))
        if value is None and field.required:
            raise FormError(f"{field.label} is required")
        if value is not None:
            values[field.name] = value
    return values


def initial_text(field: FormField) -> str:
    """What a text-like widget shows before the user types: the default in the widget's notation."""
    if field.default is None:
        return ""
    if field.widget == "lines":
        return "\n".join(str(v) for v in field.default)
    if field.widget == "json":
        return json.dumps(field.default, indent=2)
    return str(field.default)


def main_text_field(output_schema: dict) -> str | None:
    """The output property to show prominently: a well-known name, else the first string property."""
    strings = [
        name
        for name, node in output_schema.get("properties", {}).items()
        if resolve(output_schema, node).get("type") == "string"
    ]
    for name in MAIN_TEXT_NAMES:
        if name in strings:
            return name
    return strings[0] if strings else None


def field_help(schema: dict, name: str) -> str | None:
    """The description the app's author gave field `name`, as a widget's help text (None if none)."""
    node = schema.get("properties", {}).get(name)
    return resolve(schema, node).get("description") or None if node is not None else None


def field_default(schema: dict, name: str, fallback: Any = None) -> Any:
    """The field's default in the app's schema (what the app does when the field is left out)."""
    node = schema.get("properties", {}).get(name)
    return resolve(schema, node).get("default", fallback) if node is not None else fallback


def field_bounds(schema: dict, name: str) -> tuple[float | None, float | None]:
    """The field's minimum and maximum in the app's schema (exclusive bounds as given)."""
    node = resolve(schema, schema.get("properties", {}).get(name) or {})
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    return low, high
