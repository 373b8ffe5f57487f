"""Visible text with RapidOCR (PP-OCR detection + recognition, ONNX, models inside the wheel)."""

from __future__ import annotations

import re
import threading

import numpy as np

_HAS_LETTERS = re.compile(r"[^\W\d_]{2,}")


class TextReader:
    """Reads lines of printed text; drops low-confidence fragments that are noise on photos."""

    def __init__(self, min_confidence: float = 0.8):
        from rapidocr import RapidOCR

        self.min_confidence = min_confidence
        self._ocr = RapidOCR(params={"Global.log_level": "error"})  # else it logs every load and empty page
        self._lock = threading.Lock()

    def read(self, rgb: np.ndarray) -> list[str]:
        """Text lines, top to bottom, that carry at least one word of two letters."""
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # RapidOCR takes arrays in OpenCV's BGR order
        from rapidocr.ch_ppocr_rec.typings import TextRecOutput
        from rapidocr.utils.output import RapidOCROutput

        with self._lock:
            result = self._ocr(bgr)
        if not isinstance(result, (RapidOCROutput, TextRecOutput)):
            # boxes without recognition (RapidOCR logs a failed recognition step and returns the
            # detection alone) or a classification alone: no text was read
            return []
        texts = result.txts or ()
        scores = result.scores or ()
        return [t.strip() for t, s in zip(texts, scores) if s >= self.min_confidence and _HAS_LETTERS.search(t)]
