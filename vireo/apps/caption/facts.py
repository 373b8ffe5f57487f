"""Facts about a picture from three small vision models: objects, scene and visible text.

These facts are all a caption may say; the LLM only puts them into words.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, Field

from vireo.apps.caption.detector import ObjectDetector
from vireo.apps.caption.ocr import TextReader
from vireo.apps.caption.scene import SceneClassifier

MIN_SCENE_CONFIDENCE = 0.3  # below this the ImageNet guess is left out of captions


class ObjectFact(BaseModel):
    label: str = Field(description="COCO class name, e.g. 'cat'")
    count: int
    confidence: float = Field(description="highest detection confidence of this label")
    boxes: list[tuple[int, int, int, int]] = Field(description="x0, y0, x1, y1 in pixels")


class SceneFact(BaseModel):
    label: str = Field(description="ImageNet class, e.g. 'Egyptian cat'")
    synonyms: list[str]
    confidence: float
    alternatives: list[tuple[str, float]] = Field(default_factory=list)


class ImageFacts(BaseModel):
    width: int
    height: int
    objects: list[ObjectFact]
    scene: SceneFact | None
    text: list[str]

    @property
    def confident_scene(self) -> SceneFact | None:
        """The scene guess if it is confident enough to mention."""
        if self.scene is not None and self.scene.confidence >= MIN_SCENE_CONFIDENCE:
            return self.scene
        return None


class VisionModels:
    """The three models, each loaded on first use and shared by every caption job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detector: ObjectDetector | None = None
        self._scene: SceneClassifier | None = None
        self._reader: TextReader | None = None

    def detector(self) -> ObjectDetector:
        with self._lock:
            self._detector = self._detector or ObjectDetector()
        return self._detector

    def scene(self) -> SceneClassifier:
        with self._lock:
            self._scene = self._scene or SceneClassifier()
        return self._scene

    def reader(self) -> TextReader:
        with self._lock:
            self._reader = self._reader or TextReader()
        return self._reader


@lru_cache(maxsize=1)
def shared_vision_models() -> VisionModels:
    return VisionModels()


def extract_facts(image, models: VisionModels | None = None, read_text: bool = True) -> ImageFacts:
    """Run detection, scene classification and OCR on a PIL RGB image."""
    models = models or shared_vision_models()
    rgb = np.asarray(image)
    objects = _group(models.detector().detect(rgb))
    guesses = models.scene().classify(image)
    top = guesses[0]
    scene = SceneFact(
        label=top.label,
        synonyms=top.synonyms,
        confidence=top.confidence,
        alternatives=[(g.label, g.confidence) for g in guesses[1:]],
    )
    text = models.reader().read(rgb) if read_text else []
    return ImageFacts(width=image.width, height=image.height, objects=objects, scene=scene, text=text)


def _group(detections) -> list[ObjectFact]:
    by_label = defaultdict(list)
    for detection in detections:
        by_label[detection.label].append(detection)
    return [
        ObjectFact(
            label=label, count=len(found), confidence=max(d.confidence for d in found), boxes=[d.box for d in found]
        )
        for label, found in sorted(by_label.items(), key=lambda kv: -max(d.confidence for d in kv[1]))
    ]
