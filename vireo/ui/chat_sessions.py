"""Chat conversations kept on the UI's disk, one file per API address and key, so a conversation can be
picked up again after a reload or in another tab (no Streamlit here).

The file is named by a hash of the address and key (the key itself is never written) and holds each
conversation's messages and system prompt; the newest conversation comes first."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

TITLE_CHARS = 48
KEPT = 50  # conversations kept per key; the oldest go first


@dataclass
class Conversation:
    id: str
    title: str = "New conversation"
    system: str = ""
    messages: list[dict] = field(default_factory=list)  # {"role", "content", "note"?}
    updated_at: float = field(default_factory=time.time)

    def add(self, role: str, content: str, note: str | None = None) -> None:
        self.messages.append({"role": role, "content": content, **({"note": note} if note else {})})
        if role == "user" and self.title == "New conversation":
            self.title = title_of(content)
        self.updated_at = time.time()


def title_of(first_message: str) -> str:
    words = " ".join(first_message.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1] + "…"


def new_conversation() -> Conversation:
    return Conversation(id=uuid.uuid4().hex[:12])


class ChatStore:
    """The conversations of one API address and key, in one JSON file."""

    def __init__(self, folder: Path, api_url: str, api_key: str):
        owner = hashlib.sha256(f"{api_url.rstrip('/')}\n{api_key}".encode()).hexdigest()[:24]
        self.path = folder / f"{owner}.json"

    def load(self) -> list[Conversation]:
        try:
            raw = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        kept = []
        for item in raw.get("conversations", []):
            try:
                kept.append(Conversation(**item))
            except TypeError:  # written by another version: skip what does not fit
                continue
        return sorted(kept, key=lambda c: -c.updated_at)

    def save(self, conversations: list[Conversation]) -> None:
        """Write atomically (a reader never sees half a file); empty conversations are not kept."""
        kept = sorted((c for c in conversations if c.messages), key=lambda c: -c.updated_at)[:KEPT]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".chat-", suffix=".json")
        with os.fdopen(handle, "w") as out:
            json.dump({"conversations": [asdict(c) for c in kept]}, out)
        os.replace(temporary, self.path)
