"""Content templates for the generate app: what to write and which variables fill it in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    brief: str  # filled with str.format(**variables); optional variables become "Key: value" lines
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def render(self, variables: dict[str, str]) -> str:
        text = self.brief.format(**{k: variables[k].strip() for k in self.required})
        extra = [
            f"{k.replace('_', ' ').capitalize()}: {variables[k].strip()}"
            for k in self.optional
            if variables.get(k, "").strip()
        ]
        return text + ("\n" + "\n".join(extra) if extra else "")


TEMPLATES: dict[str, Template] = {
    "ad_copy": Template(
        "Write advertising copy for {product}.", ("product",), ("audience", "features", "platform", "call_to_action")
    ),
    "product_description": Template(
        "Write a product description for {product}.", ("product",), ("features", "audience", "price")
    ),
    "story": Template("Write a short story about {topic}.", ("topic",), ("characters", "setting", "genre")),
    "script": Template(
        "Write a script about {topic}, with speaker names before each line.",
        ("topic",),
        ("format", "characters", "duration"),
    ),
    "email": Template(
        "Write an email whose purpose is: {purpose}.", ("purpose",), ("recipient", "sender", "key_points")
    ),
    "custom": Template("", ()),  # the request's `instructions` are the whole brief
}

TONES = ("neutral", "friendly", "professional", "playful", "persuasive", "formal", "humorous")
LENGTH_WORDS = {"short": 60, "medium": 150, "long": 350}
