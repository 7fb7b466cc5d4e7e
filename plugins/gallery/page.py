"""The gallery's index.html: a template from package data, filled with escaped text.

Text from photos and the catalog (titles, EXIF, prompts) is attacker-controlled as far as the
page is concerned: in HTML it is escaped, in the embedded JSON every ``<``, ``>`` and ``&`` is a
``\\u`` escape (so ``</script>`` cannot end the block), and the script only ever sets it as
``textContent``. A Content-Security-Policy forbids inline scripts besides.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote

ASSETS = ("gallery.css", "gallery.js")


@dataclass
class Entry:
    """One photo of the page: pictures, words, download."""

    title: str
    recipe: str
    thumb: Any  # images.Picture
    after: Any
    before: Any  # None: the original could not be read, the output is shown alone
    facts: list[tuple[str, str]]
    recipe_facts: list[tuple[str, str]]
    params: list[tuple[str, str]]
    download: Any = None  # downloads.Download or None
    download_label: str = ""  # what the file is: "JPEG · 6000 × 4000 px · 12.4 MB"
    map_link: str | None = None
    keywords: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        """What the script needs, as JSON-able data."""
        return {
            "title": self.title,
            "recipe": self.recipe,
            "after": {"src": url(self.after.src), "w": self.after.width, "h": self.after.height},
            "before": {"src": url(self.before.src)} if self.before else None,
            "facts": self.facts,
            "recipeFacts": self.recipe_facts,
            "params": self.params,
            "download": ({"href": url(self.download.href), "name": self.download.name,
                          "label": self.download_label} if self.download else None),
            "map": self.map_link,
            "keywords": self.keywords,
        }


def asset_text(name: str) -> str:
    """A packaged asset (index.html, gallery.css, gallery.js) as text."""
    return resources.files("photobatch.plugins.gallery").joinpath("assets", name).read_text("utf-8")


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no way out of the element)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def url(path: str) -> str:
    """A relative URL for a gallery file, percent-encoded (names may hold spaces, quotes, #)."""
    return quote(path, safe="/")


# Tiles in the first screenful of a wide window (rows of ~4-6 at 240 px).
EAGER_TILES = 12


def render_page(*, title: str, subtitle: str, entries: list[Entry], zip_link: tuple[str, str] | None,
                generated: str, assets: dict[str, str]) -> str:
    """The whole index.html; ``assets`` maps asset names to their paths in the gallery."""
    esc = html.escape
    tiles = []
    for i, entry in enumerate(entries):
        ratio = entry.thumb.width / max(1, entry.thumb.height)
        # The first screenful loads at once (lazy loading would hold back the first paint);
        # the rest as the viewer scrolls to them.
        loading = "eager" if i < EAGER_TILES else "lazy"
        # The server-side grid works without the script; the script adds the viewer.
        tiles.append(
            f'<a class="tile" href="{esc(url(entry.after.src))}" data-index="{i}" '
            f'style="--ar:{ratio:.4f}">'
            f'<img src="{esc(url(entry.thumb.src))}" width="{entry.thumb.width}" '
            f'height="{entry.thumb.height}" alt="{esc(entry.title)}" loading="{loading}" decoding="async">'
            f'<span class="tile-caption"><span class="tile-title">{esc(entry.title)}</span>'
            f'<span class="tile-recipe">{esc(entry.recipe)}</span></span></a>')
    zip_html = ""
    if zip_link:
        href, label = zip_link
        zip_html = (f'<a class="button download-all" href="{esc(url(href))}" download>'
                    f'{esc(label)}</a>')
    return Template(asset_text("index.html")).substitute(
        title=esc(title),
        subtitle=esc(subtitle),
        download_all=zip_html,
        tiles="\n      ".join(tiles),
        data=json_for_script({"title": title, "photos": [e.as_data() for e in entries]}),
        generated=esc(generated),
        css=esc(url(assets["gallery.css"])),
        js=esc(url(assets["gallery.js"])),
    )
