"""Language of an article: "zh-Hans", "zh-Hant", "en", "mixed" or "und".

A script count: Han characters against Latin words (one Chinese character
carries about as much as one English word). Simplified and Traditional are
told apart with OpenCC: converting Traditional text to Simplified changes many
characters, converting Simplified text to Traditional changes many others.
"""

from __future__ import annotations

import re
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_SAMPLE = 3000  # characters looked at; enough to be sure, cheap on long articles


@lru_cache(maxsize=None)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def detect_language(text: str) -> str:
    family = script_family(text)
    return han_script(text[:_SAMPLE]) if family == "zh" else family


def script_family(text: str) -> str:
    """"zh", "en", "mixed" or "und" by the rule of :func:`detect_language`, without telling
    Simplified from Traditional (a script count only: cheap enough for every search candidate)."""
    sample = text[:_SAMPLE]
    han = len(_HAN.findall(sample))
    latin = len(_LATIN_WORD.findall(sample))
    if han + latin == 0:
        return "und"
    share = han / (han + latin)
    return "en" if share < 0.25 else "mixed" if share < 0.75 else "zh"


def han_script(text: str) -> str:
    """"zh-Hant" when the text reads as Traditional Chinese, else "zh-Hans"."""
    hans = _converter("s2t").convert(text)  # changes Simplified-only characters
    hant = _converter("t2s").convert(text)  # changes Traditional-only characters
    simplified_chars = sum(a != b for a, b in zip(text, hans))
    traditional_chars = sum(a != b for a, b in zip(text, hant))
    return "zh-Hant" if traditional_chars > simplified_chars else "zh-Hans"
