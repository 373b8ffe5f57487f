"""Words from facts: the constrained caption prompt, a template caption, alt text and tags."""

from __future__ import annotations

import re

from vireo.apps.caption.facts import ImageFacts

_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_IRREGULAR_PLURALS = {
    "person": "people",
    "knife": "knives",
    "mouse": "mice",
    "skis": "skis",
    "bus": "buses",
    "glass": "glasses",
}
MAX_TEXT_IN_CAPTION = 80  # characters of OCR text quoted in a caption

SYSTEM_PROMPT = (
    "You write one short, plain caption for a photo you cannot see. You are given facts found by "
    "vision models. Use only these facts. Never name an object, animal, person or place that is not "
    "in the facts. Do not guess colours, actions or settings."
)


def plural(label: str, count: int) -> str:
    """'cup', 2 -> 'two cups'; 'person', 1 -> 'a person'."""
    if count == 1:
        return ("an " if label[0] in "aeiou" else "a ") + label
    words = label.split()
    last = _IRREGULAR_PLURALS.get(words[-1], words[-1] + ("es" if words[-1].endswith(("s", "ch", "sh")) else "s"))
    return f"{_NUMBER_WORDS.get(count, str(count))} {' '.join(words[:-1] + [last])}"


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def quoted_text(facts: ImageFacts) -> str:
    joined = " ".join(facts.text)
    return joined if len(joined) <= MAX_TEXT_IN_CAPTION else joined[:MAX_TEXT_IN_CAPTION].rsplit(" ", 1)[0] + "…"


def facts_block(facts: ImageFacts) -> str:
    """The facts as short lines for the prompt."""
    objects = join_phrases([plural(o.label, o.count) for o in facts.objects]) or "none detected"
    scene = facts.confident_scene
    lines = [
        f"- objects: {objects}",
        f"- looks like: {scene.label}" if scene else "- looks like: unsure",
        f'- visible text: "{quoted_text(facts)}"' if facts.text else "- visible text: none",
    ]
    return "\n".join(lines)


def caption_messages(facts: ImageFacts, style: str | None = None) -> list[dict]:
    """Chat messages asking for one caption sentence from the facts only."""
    ask = "Write one caption sentence using only these facts."
    if style:
        ask += f" Style: {style.strip()[:200]}."
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Facts:\n{facts_block(facts)}\n\n{ask}"},
    ]


def template_caption(facts: ImageFacts) -> str:
    """A caption built from the facts alone; always true to them."""
    objects = join_phrases([plural(o.label, o.count) for o in facts.objects])
    scene = facts.confident_scene
    if objects:
        sentence = f"A photo showing {objects}"
        if scene and scene.label.lower() not in {o.label for o in facts.objects}:
            sentence += f"; it looks like {_article(scene.label)}"
    elif scene:
        sentence = f"A photo that looks like {_article(scene.label)}"
    elif facts.text:
        sentence = "An image of printed text"
    else:
        sentence = "A photo"
    if facts.text:
        sentence += f', with the text "{quoted_text(facts)}"'
    return sentence + "."


def _article(label: str) -> str:
    if label[:1].isupper() and " " not in label:
        return label
    return ("an " if label[0].lower() in "aeiou" else "a ") + label


def clean_caption(text: str) -> str:
    """The first sentence of the model's text, without quotes or a 'Caption:' prefix."""
    text = re.sub(r"^\s*(caption\s*:)?\s*", "", text.strip(), flags=re.IGNORECASE).strip().strip('"').strip()
    match = re.match(r"(.+?[.!?])(\s|$)", text, flags=re.DOTALL)
    sentence = (match.group(1) if match else text).strip()
    return " ".join(sentence.split())


def alt_text(caption: str, facts: ImageFacts) -> str:
    """Alt text: the caption, plus all visible text for screen readers."""
    if facts.text and quoted_text(facts) not in caption:
        return f'{caption} Text in the image: "{" ".join(facts.text)}"'
    return caption


def tags(facts: ImageFacts) -> list[str]:
    found = [o.label for o in facts.objects]
    scene = facts.confident_scene
    if scene:
        found.append(scene.label.lower())
    if facts.text:
        found.append("text")
    return list(dict.fromkeys(found))
