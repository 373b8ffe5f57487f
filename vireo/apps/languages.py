"""Language codes the translate app accepts (BCP-47 style), their names, and detection."""

from __future__ import annotations

from vireo.apps.base import AppInputError

LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "ms": "Malay",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "pt-BR": "Brazilian Portuguese",
    "pt-PT": "European Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "sw": "Swahili",
    "th": "Thai",
    "tl": "Tagalog",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
    "zh-CN": "Simplified Chinese",
    "zh-TW": "Traditional Chinese",
}
_BY_LOWER = {code.lower(): code for code in LANGUAGES}
# langdetect's codes that differ from ours
_DETECTED = {"zh-cn": "zh-CN", "zh-tw": "zh-TW"}


def accepted_codes() -> str:
    return ", ".join(sorted(LANGUAGES))


def normalize_code(code: str, field: str) -> str:
    """The canonical spelling of `code` ("PT_br" -> "pt-BR"); AppInputError listing codes if unknown."""
    key = code.strip().replace("_", "-").lower()
    if key not in _BY_LOWER:
        raise AppInputError(f"{field}: unknown language code {code!r}; accepted codes: {accepted_codes()}")
    return _BY_LOWER[key]


def language_name(code: str) -> str:
    return LANGUAGES[code]


def base_language(code: str) -> str:
    """ "pt-BR" -> "pt"; used to compare a detected language with a requested one."""
    return code.split("-")[0]


def detect_language(text: str) -> str | None:
    """The most likely language code of `text` (deterministic), or None when unsure."""
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0  # langdetect samples; a fixed seed makes it repeatable
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return None
    code = _DETECTED.get(best.lang, best.lang)
    return _BY_LOWER.get(code.lower()) if best.prob >= 0.5 else None
