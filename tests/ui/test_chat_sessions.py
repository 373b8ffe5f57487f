"""Chat conversations kept on disk per API address and key, and picked up again."""

from __future__ import annotations

import json

from vireo.ui.chat_sessions import KEPT, ChatStore, new_conversation, title_of


def test_conversations_survive_a_new_store_and_keys_do_not_share_them(tmp_path):
    store = ChatStore(tmp_path, "http://api:8000/", "key-a")
    talk = new_conversation()
    talk.system = "Be brief."
    talk.add("user", "What is the capital of France, and why is it famous?")
    talk.add("assistant", "Paris.", note="cut at the max-tokens limit")
    store.save([talk, new_conversation()])  # the empty one is not kept
    again = ChatStore(tmp_path, "http://api:8000", "key-a").load()
    assert len(again) == 1 and again[0].id == talk.id and again[0].system == "Be brief."
    assert again[0].messages[1] == {"role": "assistant", "content": "Paris.", "note": "cut at the max-tokens limit"}
    assert again[0].title == "What is the capital of France, and why is it fa…"
    assert ChatStore(tmp_path, "http://api:8000", "key-b").load() == []
    assert "key-a" not in store.path.name and "key-a" not in store.path.read_text()


def test_the_newest_conversations_are_kept_first_and_the_oldest_dropped(tmp_path):
    store = ChatStore(tmp_path, "http://api", "k")
    talks = []
    for number in range(KEPT + 3):
        talk = new_conversation()
        talk.add("user", f"question {number}")
        talk.updated_at = float(number)
        talks.append(talk)
    store.save(talks)
    kept = store.load()
    assert len(kept) == KEPT and kept[0].title == f"question {KEPT + 2}" and kept[-1].title == "question 3"


def test_a_damaged_file_starts_afresh_and_unknown_fields_are_skipped(tmp_path):
    store = ChatStore(tmp_path, "http://api", "k")
    store.path.write_text("{not json")
    assert store.load() == []
    store.path.write_text(json.dumps({"conversations": [{"id": "x", "colour": "red"}, {"id": "y"}]}))
    assert [c.id for c in store.load()] == ["y"]
    assert title_of("  many   spaces\nand lines ") == "many spaces and lines"
