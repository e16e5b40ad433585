"""OCR accuracy: character error rate against a ground truth."""

from __future__ import annotations

import unicodedata

import numpy as np

# Tesseract often prints typographic forms of plain ASCII punctuation.
_ASCII_PUNCTUATION = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "—": "-", "–": "-", "ﬁ": "fi", "ﬂ": "fl"}
)


def normalize(text: str) -> str:
    """NFKC, typographic quotes and dashes to ASCII, all whitespace runs to one space."""
    folded = unicodedata.normalize("NFKC", text).translate(_ASCII_PUNCTUATION)
    return " ".join(folded.split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1).

    One numpy pass per character of ``a``: substitutions and deletions are
    vectorised, insertions are a running minimum along the row.
    """
    if not a or not b:
        return len(a) or len(b)
    codes_b = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.arange(len(b) + 1)
    previous = offsets.copy()
    for i, char in enumerate(a, start=1):
        cost = (codes_b != ord(char)).astype(np.int64)
        row = np.empty_like(previous)
        row[0] = i
        row[1:] = np.minimum(previous[1:] + 1, previous[:-1] + cost)
        previous = np.minimum.accumulate(row - offsets) + offsets
    return int(previous[-1])


def cer(truth: str, text: str) -> float:
    """Character error rate: edit distance / truth length, both normalized.

    0.0 is perfect; above 1.0 is possible when the text is much longer than the truth.
    """
    expected, actual = normalize(truth), normalize(text)
    if not expected:
        return 0.0 if not actual else 1.0
    return levenshtein(expected, actual) / len(expected)
