"""How much a person may upload in one go, from the API's own limit (`GET /v1/limits`).

Files go to the API inside one JSON request, base64-encoded (4 bytes for every 3), so the files of one
upload may fill about three quarters of the API's request limit (VIREO_MAX_BODY_BYTES). Streamlit's
uploader is told that per file (`max_upload_size`); before sending, the page measures the request it
is about to make against the limit, so an upload too large in all is explained, not refused with 413.
"""

from __future__ import annotations

import json

MIB = 2**20
JSON_AROUND_FILES = 16 * 1024  # room left for the job's JSON besides the files (names, options, text)


def largest_upload(request_body_bytes: int) -> int:
    """Bytes of files (all of one upload together) that fit in one request."""
    return max(0, (request_body_bytes - JSON_AROUND_FILES) * 3 // 4)


def uploader_cap_mb(request_body_bytes: int) -> int:
    """Streamlit's per-file limit, in whole MB of 2^20 bytes (at least 1; `too_large` checks the rest)."""
    return max(1, largest_upload(request_body_bytes) // MIB)


def size(n: int) -> str:
    return f"{n / MIB:.1f} MB" if n >= MIB // 10 else f"{n / 1024:.0f} KB"


def note(request_body_bytes: int) -> str:
    return (
        f"Up to {size(largest_upload(request_body_bytes))} of files per upload: the API takes "
        f"{size(request_body_bytes)} per request (VIREO_MAX_BODY_BYTES), and files travel base64-encoded."
    )


def request_bytes(app: str, input: dict) -> int:
    """The size of the job request the client will send (at most: it writes compact JSON)."""
    return len(json.dumps({"app": app, "input": input, "options": {}}).encode())


def too_large(app: str, input: dict, request_body_bytes: int) -> str | None:
    """Why this job cannot go in one request, or None when it fits."""
    needed = request_bytes(app, input)
    if needed <= request_body_bytes:
        return None
    return (
        f"This upload makes a request of {size(needed)}; the API takes at most {size(request_body_bytes)} "
        f"(VIREO_MAX_BODY_BYTES), about {size(largest_upload(request_body_bytes))} of files. Send fewer or "
        "smaller files at a time, or ask the operator to raise the limit."
    )
