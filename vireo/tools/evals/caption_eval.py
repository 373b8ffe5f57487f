"""Caption eval on scikit-image's bundled photos: which facts are right or wrong, and whether a
caption names objects that are not in its facts (invented) or not in the picture."""

from __future__ import annotations

import base64
import io

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs

DATASET = "caption_truth.json"
CI_IMAGES = 7  # the whole set is small


def photo_base64(name: str) -> str:
    import numpy as np
    from PIL import Image
    from skimage import data

    pixels = getattr(data, name)()
    pixels = pixels[0] if name == "stereo_motorcycle" else pixels
    pixels = np.stack([pixels] * 3, axis=-1) if pixels.ndim == 2 else pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def score_image(name: str, truth: dict, out: dict) -> dict:
    from vireo.apps.caption.facts import ImageFacts
    from vireo.apps.caption.vocabulary import PERSON_WORDS, invented_objects, mentioned_objects

    if "error" in out:
        return {"image": name, "error": out["error"]}
    facts = ImageFacts.model_validate(out["facts"])
    detected = [o.label for o in facts.objects]
    scene = facts.confident_scene
    scene_right = None if scene is None else any(w in s.lower() for w in truth["scene_words"] for s in scene.synonyms)
    true_words = set(truth["objects"]) | {w for phrase in truth["scene_words"] for w in [phrase, phrase.split()[-1]]}
    true_words |= PERSON_WORDS if "person" in truth["objects"] else set()
    named = mentioned_objects(out["caption"])
    return {
        "image": name,
        "caption": out["caption"],
        "path": out["path"],
        "rejected_caption": out.get("rejected_caption"),
        "objects_right": [o for o in detected if o in truth["objects"]],
        "objects_wrong": [o for o in detected if o not in truth["objects"]],
        "objects_missed": [o for o in truth["objects"] if o not in detected],
        "scene": scene.label if scene else None,
        "scene_confidence": facts.scene.confidence if facts.scene else None,
        "scene_right": scene_right,
        "text_found": facts.text,
        "text_right": bool(facts.text) == truth["has_text"],
        "invented_vs_facts": invented_objects(out["caption"], facts),
        "named_not_in_picture": sorted(w for w in named if w not in true_words and w.split()[-1] not in true_words),
    }


def summarize(details: list[dict]) -> dict:
    ok = [d for d in details if "error" not in d]
    scenes = [d for d in ok if d["scene_right"] is not None]
    return {
        "images": len(details),
        "failed": len(details) - len(ok),
        "object_facts_right": sum(len(d["objects_right"]) for d in ok),
        "object_facts_wrong": sum(len(d["objects_wrong"]) for d in ok),
        "objects_missed": sum(len(d["objects_missed"]) for d in ok),
        "scene_right": sum(bool(d["scene_right"]) for d in scenes),
        "scene_stated": len(scenes),
        "text_presence_right": sum(d["text_right"] for d in ok),
        "captions_with_invented_objects_vs_facts": sum(bool(d["invented_vs_facts"]) for d in ok),
        "captions_naming_objects_not_in_picture": sum(bool(d["named_not_in_picture"]) for d in ok),
        "llm_captions_kept": sum(d["path"] == "llm_from_facts" for d in ok),
        "llm_captions_replaced_by_template": sum(d["path"] == "template_fallback" for d in ok),
    }


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    truth = load(DATASET)["images"]
    names = list(truth)[: None if full else CI_IMAGES][:limit]
    outputs = run_jobs(
        runner, [("caption", {"image_base64": photo_base64(n)}, {"temperature": 0.0}) for n in names], concurrency
    )
    details = [score_image(n, truth[n], out) for n, out in zip(names, outputs)]
    return {"dataset": describe(DATASET, len(names), full), "metrics": summarize(details), "items": details}


def run_eval(app_name: str, runner, full: bool = False) -> dict:
    """The brief's entry point; `vireo.tools.evals.harness.run_eval('caption', ...)` adds date and machine."""
    return evaluate(runner, full=full, concurrency=2)
