"""Sample corpus: scanned-looking, image-only PDFs with known ground-truth text.

Pages are drawn with Pillow at 300 dpi on US Letter (2550 x 3300 px, 8.4 megapixels),
wrapped into PDFs by img2pdf without dates, so the same inputs give the same bytes.
The files live in ``settings.VAR_DIR / "corpus"`` and are generated on first use.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import img2pdf
import numpy as np
from django.conf import settings
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CORPUS_VERSION = "1"
CORPUS_NAMES: tuple[str, ...] = ("sample.pdf", "multipage.pdf", "degraded.pdf")
PAGE_SEPARATOR = "\n\f"

DPI = 300
PAGE_SIZE_PX = (2550, 3300)  # US Letter at 300 dpi
MARGIN_PX = 300  # one inch
FONT_SIZE_PX = 50  # 12 pt at 300 dpi
TITLE_SIZE_PX = 67  # 16 pt
LINE_SPACING = 1.5
NOISE_SEED = 20240611
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {"serif": "DejaVuSerif.ttf", "sans": "DejaVuSans.ttf"}

_TEXTS: dict[str, list[str]] = {
    "sample.pdf": [
        "The Keeper of the Harbour Light\n"
        "For nearly forty years the lighthouse on the northern breakwater was kept by "
        "one family. Each evening at dusk the keeper climbed the 112 steps of the tower, "
        "trimmed the wick, wound the clockwork that turned the lens, and wrote the time "
        "in a thin grey logbook. The entries are short and plain: the state of the sea, "
        "the direction of the wind, the number of ships that passed before midnight.\n"
        "Reading them today, one is struck less by the storms than by the routine. A "
        "winter gale in 1891 earns two lines; a broken pane of glass in the lantern "
        "room earns half a page, with a careful sketch of the frame and a note on the "
        "price of putty. The keeper knew that the light mattered more than the weather. "
        "A ship could ride out a storm, but a dark tower on a moonless night could send "
        "a whole crew onto the rocks.\n"
        "When the station was automated in 1963, the last keeper handed over the keys, "
        "the logbooks, and a tin of brass polish. The lamp still turns every night, "
        "though nobody climbs the stairs to watch it."
    ],
    "multipage.pdf": [
        "Notes on Bread, Part One\n"
        "Bread is one of the oldest prepared foods. Grains were ground between stones "
        "long before anyone wrote down a recipe, and the first loaves were probably flat "
        "cakes baked on hot ashes. Leavened bread came later, when a dough left standing "
        "in a warm room began to rise on its own. Wild yeasts and bacteria from the air "
        "and the flour itself did the work, and the baker only had to wait.\n"
        "A simple loaf still needs just four things: flour, water, salt, and time. The "
        "proportions matter less than most cookbooks suggest. What matters is patience, "
        "a warm kitchen, and a hand that learns how a good dough should feel.",
        "Notes on Bread, Part Two\n"
        "Commercial yeast changed the rhythm of the bakery. A dough that once needed a "
        "whole night could be ready in two or three hours, and bakers in growing cities "
        "could feed many more people each morning. The price was flavour. Slow "
        "fermentation builds acids and aromas that a quick rise never has time to make.\n"
        "Many small bakeries have returned to the older method. They keep a starter in a "
        "covered jar, feed it twice a day with fresh flour and water, and mix the first "
        "dough of the day at about 4 in the afternoon for the next morning.",
        "Notes on Bread, Part Three\n"
        "The oven is the last and least forgiving step. Steam in the first ten minutes "
        "keeps the crust soft long enough for the loaf to expand; dry heat afterwards "
        "sets the crust and browns it. A loaf of 900 grams usually bakes for about 45 "
        "minutes at 230 degrees.\n"
        "Once out of the oven, bread should cool on a rack for at least an hour. Cutting "
        "it too early lets the steam escape and leaves the crumb gummy. Good bread "
        "rewards the same virtue at every stage: waiting a little longer than you want.",
    ],
    "degraded.pdf": [
        "A Letter from the Survey Office\n"
        "Dear Mr. Holloway, thank you for your letter of 14 March and for the copies of "
        "the old boundary maps. We have compared them with our own records and found "
        "that the eastern line of your field was redrawn in 1928, when the river changed "
        "its course after the spring floods. The stone markers you mention were placed "
        "at that time and should still stand near the footbridge.\n"
        "Our surveyor will visit the site during the week of 6 May to measure the line "
        "again and to check the markers against the map. Please make sure that the gate "
        "on the lane is left open on those days. If the markers have moved or been "
        "buried, we will set new ones and send you a revised plan within six weeks.\n"
        "Yours sincerely, the District Survey Office."
    ],
}


class UnknownDocument(ValueError):
    """The name is not one of the corpus documents."""


class CorpusFontMissing(RuntimeError):
    """The DejaVu fonts used to draw the corpus are not installed."""


@dataclass(frozen=True)
class _Spec:
    font: str
    degrade: bool = False


_SPECS = {
    "sample.pdf": _Spec(font="serif"),
    "multipage.pdf": _Spec(font="sans"),
    "degraded.pdf": _Spec(font="serif", degrade=True),
}


def corpus_dir() -> Path:
    """Return the directory holding the generated corpus (it may not exist yet)."""
    return Path(settings.VAR_DIR) / "corpus"


def resolve(name: str) -> Path:
    """Return the PDF path of corpus document ``name``, generating the corpus if needed.

    Only the exact names in CORPUS_NAMES are accepted ("sample.pdf", ...); paths,
    other spellings and unknown names raise UnknownDocument.
    """
    _check_name(name)
    return ensure_corpus() / name


def truth(name: str) -> str:
    """Return the ground-truth text of ``name``, pages joined by PAGE_SEPARATOR."""
    return PAGE_SEPARATOR.join(truth_pages(name))


def truth_pages(name: str) -> list[str]:
    """Return the ground-truth text of each page of ``name``, lines as laid out."""
    _check_name(name)
    font, title_font = _fonts(_SPECS[name].font)
    return ["\n".join(_layout(text, font, title_font)[0]) for text in _TEXTS[name]]


def ensure_corpus() -> Path:
    """Generate any missing corpus file and return the corpus directory.

    Cheap when the files are present (a few stat calls). A changed CORPUS_VERSION
    regenerates everything. Safe when several processes call it at once: each file
    is written to a temporary file and moved into place with os.replace.
    """
    directory = corpus_dir()
    stamp = directory / "VERSION"
    current = stamp.is_file() and stamp.read_text().strip() == CORPUS_VERSION
    for name in CORPUS_NAMES:
        pdf, text = directory / name, _truth_path(directory, name)
        if current and pdf.is_file() and text.is_file():
            continue
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(pdf, _document_pdf(name))
        _atomic_write(text, truth(name).encode("utf-8"))
    if not current:
        _atomic_write(stamp, CORPUS_VERSION.encode())
    return directory


def render_page(name: str, page: int = 0) -> Image.Image:
    """Return page ``page`` (0-based) of ``name`` as the grayscale image in its PDF."""
    _check_name(name)
    spec = _SPECS[name]
    font, title_font = _fonts(spec.font)
    image = _draw_page(_TEXTS[name][page], font, title_font)
    if spec.degrade:
        image = _degrade(image, seed=NOISE_SEED + page)
    return image


def _check_name(name: object) -> None:
    if not isinstance(name, str) or name not in CORPUS_NAMES:
        raise UnknownDocument(
            f"Unknown corpus document {name!r}; choose one of: {', '.join(CORPUS_NAMES)}."
        )


def _truth_path(directory: Path, name: str) -> Path:
    return directory / Path(name).with_suffix(".txt")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _document_pdf(name: str) -> bytes:
    images = [_encode(render_page(name, i), _SPECS[name].degrade) for i in range(len(_TEXTS[name]))]
    return img2pdf.convert(images, nodate=True, engine=img2pdf.Engine.internal)


def _encode(image: Image.Image, lossy: bool) -> bytes:
    """Encode like a scanner would: JPEG for the noisy page, lossless PNG otherwise."""
    buffer = io.BytesIO()
    if lossy:
        image.save(buffer, format="JPEG", quality=80, dpi=(DPI, DPI))
    else:
        image.save(buffer, format="PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


@cache
def _fonts(family: str) -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
    path = FONT_DIR / FONT_FILES[family]
    if not path.is_file():
        raise CorpusFontMissing(
            f"Font {path} is missing; install it with `apt-get install fonts-dejavu-core`."
        )
    return ImageFont.truetype(str(path), FONT_SIZE_PX), ImageFont.truetype(str(path), TITLE_SIZE_PX)


def _wrap(paragraph: str, font: ImageFont.FreeTypeFont, width_px: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in paragraph.split():
        candidate = f"{current} {word}".strip()
        if current and font.getlength(candidate) > width_px:
            lines.append(current)
            candidate = word
        current = candidate
    return lines + ([current] if current else [])


def _layout(
    text: str, font, title_font
) -> tuple[list[str], list[tuple[int, str, ImageFont.FreeTypeFont]]]:
    """Wrap ``text`` (first line = title) into lines; return them and their placements."""
    title, *paragraphs = text.split("\n")
    width_px = PAGE_SIZE_PX[0] - 2 * MARGIN_PX
    step_px = round(FONT_SIZE_PX * LINE_SPACING)
    lines, placed, y = [title], [(MARGIN_PX, title, title_font)], MARGIN_PX
    y += round(TITLE_SIZE_PX * 2)
    for paragraph in paragraphs:
        for line in _wrap(paragraph, font, width_px):
            lines.append(line)
            placed.append((y, line, font))
            y += step_px
        y += step_px // 2
    return lines, placed


def _draw_page(text: str, font, title_font) -> Image.Image:
    image = Image.new("L", PAGE_SIZE_PX, color=255)
    draw = ImageDraw.Draw(image)
    for y, line, line_font in _layout(text, font, title_font)[1]:
        draw.text((MARGIN_PX, y), line, font=line_font, fill=0)
    return image


def _degrade(image: Image.Image, seed: int) -> Image.Image:
    """Skew by 2 degrees, blur, add gaussian and salt-and-pepper noise (seeded)."""
    rotated = image.rotate(2.0, resample=Image.Resampling.BICUBIC, fillcolor=255)
    blurred = rotated.filter(ImageFilter.GaussianBlur(radius=1.5))
    rng = np.random.default_rng(seed)
    pixels: np.ndarray = np.asarray(blurred, dtype=np.float32)
    pixels = pixels * 0.85 + 20 + rng.normal(0.0, 18.0, pixels.shape)
    salt_pepper = rng.random(pixels.shape)
    pixels[salt_pepper < 0.004] = 0
    pixels[salt_pepper > 0.996] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
