"""Per-browser-session state: the connection (sidebar), the API client and friendly error reporting."""

from __future__ import annotations

import time
from typing import Any, Callable

import streamlit as st

from vireo.ui.client import ApiError, ApiUnavailable, EndpointMissing, VireoClient
from vireo.ui.config import UISettings
from vireo.ui.safe_markdown import escape_text

APPS_TTL_S = 30.0


def settings() -> UISettings:
    if "settings" not in st.session_state:
        st.session_state.settings = UISettings()
    return st.session_state.settings


def connection_sidebar() -> None:
    """API address and key (the environment fills them in; open when the API cannot be read), the model
    picker and the switch that lists diagnostics apps."""
    conf = settings()
    with st.sidebar:
        st.markdown("### Vireo")
        with st.expander("Connection", expanded=not apps()):
            st.text_input("API URL", value=conf.api_url, key="api_url")
            st.text_input(
                "API key",
                value=conf.api_key,
                key="api_key",
                type="password",
                help="Defaults to VIREO_API_KEY; `make run` prints the local key.",
            )
        model_picker()
        st.toggle(
            "Show diagnostics apps",
            value=diagnostics_asked_for(),
            key="show_diagnostics",
            help="Apps for checking the platform rather than for tasks (echo). Also "
            "VIREO_SHOW_DIAGNOSTICS=1, or ?diagnostics=1 in the address.",
        )


def diagnostics_asked_for() -> bool:
    """Diagnostics apps listed from the start: by the setting, or by `?diagnostics=1` in the address."""
    return settings().show_diagnostics or st.query_params.get("diagnostics") in ("1", "true", "yes")


def show_diagnostics() -> bool:
    return bool(st.session_state.get("show_diagnostics", diagnostics_asked_for()))


APP_DEFAULT = "Each app's default"


def model_picker() -> None:
    """Which served model new jobs run on (only shown when the server serves more than one)."""
    served = models()
    if len(served) < 2:
        st.session_state.pop("model", None)
        return
    labels = {m["id"]: f"{m['id']} ({m.get('status', '')})" if m.get("status") else m["id"] for m in served}
    st.selectbox(
        "Model",
        [APP_DEFAULT, *labels],
        key="model",
        format_func=lambda choice: labels.get(choice, choice),
        help="The model new jobs run on. Each app's default is set by the operator (VIREO_APP_MODELS); "
        "a model with no worker right now keeps its jobs queued until one starts.",
    )


def chosen_model() -> str | None:
    """The model picked in the sidebar, or None for each app's default."""
    choice = st.session_state.get("model")
    return None if choice in (None, APP_DEFAULT) else choice


def models() -> list[dict]:
    """The server's served models, refreshed every APPS_TTL_S; [] when they cannot be read."""
    cached = st.session_state.get("models_cache")
    api = client()
    if cached and cached[0] == api.base_url and time.monotonic() - cached[1] < APPS_TTL_S:
        return cached[2]
    try:
        served = api.models()
    except ApiError:
        return []
    st.session_state.models_cache = (api.base_url, time.monotonic(), served)
    return served


def client() -> VireoClient:
    """The session's client for the address and key in the sidebar (rebuilt when they change)."""
    conf = settings()
    target = (st.session_state.get("api_url") or conf.api_url, st.session_state.get("api_key") or conf.api_key)
    cached = st.session_state.get("client")
    if cached is None or cached[0] != target:
        if cached is not None:
            cached[1].close()
        cached = (target, VireoClient(*target))
        st.session_state.client = cached
    return cached[1]


def show_error(exc: ApiError, what: str = "") -> None:
    """Say what went wrong in words: unreachable API, a feature this server lacks, or its error."""
    prefix, detail = f"{what}: " if what else "", escape_text(str(exc.detail))  # details echo input
    if isinstance(exc, ApiUnavailable):
        st.error(f"{prefix}{detail}. Is `vireo serve api` running, and is the URL in the sidebar right?")
    elif isinstance(exc, EndpointMissing):
        st.info(f"{prefix}not available on this server yet ({detail}).")
    elif exc.status in (401, 403):
        st.error(f"{prefix}the API refused the key ({detail}). Set it in the sidebar.")
    else:
        st.error(f"{prefix}{escape_text(str(exc))}")


def call(fn: Callable[[], Any], what: str = "") -> Any:
    """Run one API call; on failure show the error and return None."""
    try:
        return fn()
    except ApiError as exc:
        show_error(exc, what)
        return None


def apps() -> dict[str, dict]:
    """The server's app catalogue by name, refreshed every APPS_TTL_S; {} when it cannot be read."""
    cached = st.session_state.get("apps_cache")
    api = client()
    if cached and cached[0] == api.base_url and time.monotonic() - cached[1] < APPS_TTL_S:
        return cached[2]
    try:
        catalogue = {app["name"]: app for app in api.apps()}
    except ApiError:
        return {}  # pages say why when they need an app; navigation just shows the fixed pages
    st.session_state.apps_cache = (api.base_url, time.monotonic(), catalogue)
    return catalogue


def request_body_limit() -> int | None:
    """The largest request the API takes (VIREO_MAX_BODY_BYTES), read once per API address; None when it
    cannot be read (an API from before `/v1/limits` said so, or no key yet)."""
    api = client()
    cached = st.session_state.get("body_limit")
    if cached and cached[0] == api.base_url:
        return cached[1]
    try:
        limit = api.limits().get("request_body_bytes")
    except ApiError:
        return None
    st.session_state.body_limit = (api.base_url, limit)
    return limit


def require_app(name: str) -> dict | None:
    """The app's description, or a clear message (and None) when this server lacks it."""
    catalogue = apps()
    if name in catalogue:
        return catalogue[name]
    try:
        client().apps()
    except ApiError as exc:
        show_error(exc, "listing apps")
        return None
    st.info(
        f"The `{name}` app is not installed on this server. Installed apps: {', '.join(sorted(catalogue)) or 'none'}."
    )
    return None
