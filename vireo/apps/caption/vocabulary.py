"""Object words a caption could name (COCO + ImageNet), to catch objects the facts do not contain."""

from __future__ import annotations

import re
from functools import lru_cache

from vireo.apps.caption.detector import COCO_LABELS
from vireo.apps.caption.facts import ImageFacts
from vireo.apps.caption.scene import imagenet_labels

# Head nouns of ImageNet names that are also ordinary non-object words in a sentence.
_GENERIC_HEADS = {
    "light",
    "head",
    "home",
    "wall",
    "top",
    "side",
    "front",
    "back",
    "sign",
    "set",
    "case",
    "board",
    "piece",
    "cap",
    "bar",
    "system",
    "unit",
    "display",
    "web",
}
# Words a caption may use for a detected person.
PERSON_WORDS = {
    "person",
    "people",
    "man",
    "men",
    "woman",
    "women",
    "boy",
    "girl",
    "child",
    "children",
    "someone",
    "figure",
}


def _terms_of(name: str) -> set[str]:
    """A label and its head noun: 'dining table' -> {'dining table', 'table'}."""
    name = name.strip().lower()
    if not name:
        return set()
    head = name.split()[-1]
    return {name} | ({head} if head not in _GENERIC_HEADS and len(head) > 2 else set())


@lru_cache(maxsize=1)
def object_vocabulary() -> frozenset[str]:
    """Every COCO label and ImageNet synonym (with head nouns), lower case."""
    terms: set[str] = set()
    for label in COCO_LABELS.values():
        terms |= _terms_of(label)
    for line in imagenet_labels():
        for synonym in line.split(","):
            terms |= _terms_of(synonym)
    return frozenset(terms | PERSON_WORDS - {"figure", "someone"})


def allowed_terms(facts: ImageFacts) -> set[str]:
    """Object words the facts support (detected objects and the confident scene's synonyms)."""
    allowed: set[str] = set()
    for obj in facts.objects:
        allowed |= _terms_of(obj.label)
        if obj.label == "person":
            allowed |= PERSON_WORDS
    scene = facts.confident_scene
    if scene is not None:
        for synonym in scene.synonyms:
            allowed |= _terms_of(synonym)
    return allowed


def mentioned_objects(text: str) -> set[str]:
    """Vocabulary terms named in `text` (singular or plural), longest phrases first."""
    lowered = " " + re.sub(r"[^a-z0-9' -]+", " ", text.lower()) + " "
    found: set[str] = set()
    for term in sorted(object_vocabulary(), key=len, reverse=True):
        pattern = r"(?<![a-z])" + re.escape(term) + r"(?:s|es)?(?![a-z])"
        if re.search(pattern, lowered):
            if not any(f" {term} " in f" {longer} " for longer in found):
                found.add(term)
    return found


def invented_objects(text: str, facts: ImageFacts) -> list[str]:
    """Object words in `text` that the facts do not support."""
    allowed = allowed_terms(facts)
    return sorted(
        t for t in mentioned_objects(text) if t not in allowed and not any(t in a.split() or t == a for a in allowed)
    )
