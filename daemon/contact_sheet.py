"""A contact sheet of a recipe's variations on one photo (A1111's X/Y plot grid): the original,
then one picture per variation, rows for the first field's values and columns for the second's,
each captioned with what it was made with."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from photobatch.daemon.output_writer import fit_within

_MARGIN = 12
_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)
_FAILED = (235, 120, 110)


@dataclass(frozen=True)
class Sheet:
    """The sheet, and where each picture is on it: (left, top, right, bottom), the original
    first, then the cells in order."""

    image: Image.Image
    boxes: list[tuple[int, int, int, int]]


@dataclass(frozen=True)
class Cell:
    """One picture of the sheet (None: it could not be made) and its caption."""

    image: Image.Image | None
    caption: str


def contact_sheet(original: Image.Image, cells: list[Cell], columns: int, size: int = 512,
                  title: str = "") -> Sheet:
    """The sheet: a title line, then ``original`` and the ``cells`` row by row, ``columns`` cells
    a row after the original's column, each picture fitted in ``size`` x ``size``."""
    font = ImageFont.load_default(size=max(12, size // 28))
    line = _line_height(font)
    first = fit_within(original.convert("RGB"), size)
    # Every picture has the original's shape: one cell box fits them all.
    box_w, box_h = first.size
    rows = -(-len(cells) // columns)
    cell_h = box_h + line * 2 + _MARGIN
    width = _MARGIN + (columns + 1) * (box_w + _MARGIN)
    top = _MARGIN + (line + _MARGIN if title else 0)
    sheet = Image.new("RGB", (width, top + rows * cell_h), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((_MARGIN, _MARGIN), title, fill=_TEXT, font=font)
    _place(sheet, draw, font, first, "original", (_MARGIN, top), box_w, _TEXT)
    boxes = [(_MARGIN, top, _MARGIN + box_w, top + box_h)]
    for n, cell in enumerate(cells):
        row, col = divmod(n, columns)
        x = _MARGIN + (col + 1) * (box_w + _MARGIN)
        y = top + row * cell_h
        boxes.append((x, y, x + box_w, y + box_h))
        if cell.image is None:
            draw.rectangle((x, y, x + box_w - 1, y + box_h - 1), outline=_FAILED, width=2)
            _place(sheet, draw, font, None, cell.caption, (x, y), box_w, _FAILED, box_h)
        else:
            picture = fit_within(cell.image.convert("RGB"), size).resize((box_w, box_h))
            _place(sheet, draw, font, picture, cell.caption, (x, y), box_w, _TEXT)
    return Sheet(sheet, boxes)


def _place(sheet, draw, font, image, caption: str, at: tuple[int, int], box_w: int, colour,
           box_h: int | None = None) -> None:
    x, y = at
    if image is not None:
        sheet.paste(image, (x, y))
        box_h = image.height
    lines = _wrap(draw, caption, font, box_w)[:2]
    for n, text in enumerate(lines):
        draw.text((x, y + box_h + 4 + n * _line_height(font)), text, fill=colour, font=font)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    """``text`` broken at spaces into at most two lines no wider than ``width`` (the second ends
    in an ellipsis when the rest does not fit)."""
    lines, current = [], ""
    for word in text.replace(" ", " \u0000").split("\u0000"):
        trial = current + word
        if current and draw.textlength(trial.rstrip(), font=font) > width:
            lines.append(current.rstrip())
            current = word
        else:
            current = trial
    lines.append(current.rstrip())
    if len(lines) > 2:
        last = lines[1]
        while last and draw.textlength(last + "…", font=font) > width:
            last = last[:-1]
        lines = [lines[0], last + "…"]
    return lines


def _line_height(font) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return bottom - top + 6
