"""The gallery exporter: a folder with index.html that works from disk, without a network.

Layout of the folder it owns::

    index.html                      the page
    assets/gallery-<hash>.css|js    the page's style and script (content-named: caches stay right)
    thumbs/  previews/              grid thumbnails, before/after previews (made once, reused)
    full/                           full-resolution downloads (none in a --watermark proof)
    <title>.zip                     with --zip: every download in one archive
    .photobatch-gallery.json        what was exported, so the next export reuses it
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from photobatch.plugins.exporting import ExportError
from photobatch.plugins.gallery import describe
from photobatch.plugins.gallery.downloads import (
    Download,
    DownloadRefused,
    place_download,
    reuse_download,
    unique_name,
    write_zip,
)
from photobatch.plugins.gallery.images import PictureCache
from photobatch.plugins.gallery.page import ASSETS, Entry, asset_text, render_page
from photobatch.recipes.schema import WATERMARK_POSITIONS

log = logging.getLogger(__name__)

MANIFEST = ".photobatch-gallery.json"


class GalleryError(ExportError):
    """The gallery cannot be written where asked, for a reason the user can fix."""


def _proof_mark(options) -> tuple | None:
    """(Mark, a key naming it) for a proofing gallery's --watermark or --watermark-image, or
    None for an open gallery."""
    from photobatch.plugins.watermark import export_mark

    try:
        return export_mark(options.get("watermark"), options.get("watermark_image"),
                           options.get("watermark_position") or "bottom-right")
    except ValueError as exc:
        raise GalleryError(str(exc)) from None


@dataclass
class GalleryResult:
    """What an export did."""

    index: Path
    photos: int
    made: int = 0
    reused: int = 0
    left_out: list[str] = field(default_factory=list)
    zip_path: Path | None = None
    zip_size: int = 0

    def __str__(self) -> str:
        text = (f"gallery of {self.photos} photo(s): {self.index} "
                f"({self.made} picture(s) made, {self.reused} reused)")
        if self.zip_path:
            text += f"\nzip: {self.zip_path} ({describe.size_text(self.zip_size)})"
        if self.left_out:
            text += f"\n{len(self.left_out)} left out (see above)"
        return text


class GalleryExporter:
    """``photobatch export gallery``: a static before/after gallery."""

    name = "gallery"
    help = ("A static HTML gallery: justified grid, viewer with a before/after slider against "
            "each original, EXIF and recipe panels, downloads. Opens from disk, no network.")

    @property
    def options(self):
        """The gallery's own command-line options."""
        import click

        return [
            click.Option(["--title"], help="Gallery title (default: the photos' folder name)."),
            click.Option(["--zip", "make_zip"], is_flag=True,
                         help="Also write a zip of every full-resolution output."),
            click.Option(["--gps"], is_flag=True,
                         help="Show where each photo was taken, and keep GPS in the downloads."),
            click.Option(["--watermark"], metavar="TEXT",
                         help="A proofing gallery: TEXT (e.g. '© {year} {artist}', filled in "
                              "from each photo) in the corner of every picture shown, and no "
                              "full-size downloads (they are unmarked)."),
            click.Option(["--watermark-image"], metavar="FILE",
                         type=click.Path(exists=True, dir_okay=False),
                         help="The same with a graphic: your logo (a PNG with transparency)."),
            click.Option(["--watermark-position"], default="bottom-right", show_default=True,
                         type=click.Choice(WATERMARK_POSITIONS),
                         help="Where the watermark sits."),
        ]

    def export(self, items, destination, options) -> GalleryResult:
        """Write (or update) the gallery of ``items`` in the folder ``destination``."""
        watermark = _proof_mark(options)
        if watermark and options.get("make_zip"):
            raise GalleryError("--zip offers the full-size outputs, which are unmarked: a "
                               "gallery with --watermark offers no downloads")
        root = Path(destination).expanduser()
        manifest = _open_folder(root)
        items = sorted(items, key=lambda i: ((i.metadata or {}).get("date_taken") or "",
                                             i.source.name, i.recipe))
        title = options.get("title") or _default_title(items)
        gps = bool(options.get("gps"))
        cache = PictureCache(root, options.readers, watermark=watermark)
        old_downloads = manifest.get("downloads", {})
        downloads: dict[str, dict[str, Any]] = {}
        taken: set[str] = set()
        entries, shown, left_out = [], [], []
        for item in options.progress(items, total=len(items), desc="gallery"):
            try:
                entry = self._entry(item, cache, root, gps, old_downloads, downloads, taken,
                                    offer_download=watermark is None)
            except Exception as exc:  # one unreadable photo must not cost the gallery
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                left_out.append(f"{item.source.name} [{item.recipe}]: {reason}")
                options.echo(f"left out {item.source.name} [{item.recipe}]: {reason}")
                log.debug("gallery entry failed", exc_info=True)
                continue
            entries.append(entry)
            shown.append(item)
        if not entries:
            raise GalleryError("no photo could be added to the gallery (see the reasons above)")
        assets = _write_assets(root)
        zip_link, zip_path, zip_size, zip_state = None, None, 0, None
        if options.get("make_zip"):
            zip_path, zip_size, zip_state = _zip(root, title, downloads, manifest.get("zip"))
            count = f"{len(downloads)} photo" + ("" if len(downloads) == 1 else "s")
            zip_link = (zip_path.name, f"Download all ({count}, ZIP, "
                                       f"{describe.size_text(zip_size)})")
        _prune(root, cache, downloads, zip_path)
        html = render_page(title=title, subtitle=_subtitle(shown),
                           entries=entries, zip_link=zip_link,
                           generated=datetime.now().strftime("%d %b %Y, %H:%M").lstrip("0"),
                           assets=assets)
        _atomic_write(root / "index.html", html)
        _atomic_write(root / MANIFEST, json.dumps(
            {"generator": "photobatch", "downloads": downloads, "zip": zip_state}, indent=2))
        return GalleryResult(root / "index.html", len(entries), cache.made, cache.reused,
                             left_out, zip_path, zip_size)

    def _entry(self, item, cache: PictureCache, root: Path, gps: bool,
               old_downloads: dict, downloads: dict, taken: set[str],
               offer_download: bool = True) -> Entry:
        output_key = item.output_sha256 or _path_key(item.output)
        thumb, after, before = cache.pictures_for(item.output, output_key, item.source,
                                                  item.source_sha256, dict(item.metadata or {}))
        if before is None:
            log.warning("%s: no before/after comparison (%s)", item.source.name,
                        cache.missing_originals[-1])
        download, label = None, ""
        if offer_download:
            download, label = self._download(item, root, gps, old_downloads, downloads, taken,
                                             output_key)
        meta = item.metadata or {}
        return Entry(
            title=item.source.name,
            recipe=item.recipe,
            thumb=thumb, after=after, before=before,
            facts=describe.photo_facts(meta, gps=gps),
            recipe_facts=describe.recipe_facts(item.params or {}, item.seed, item.model,
                                               item.processed_at),
            params=describe.all_params(item.params or {}),
            download=download, download_label=label,
            map_link=describe.map_link(meta) if gps else None,
            keywords=list(meta.get("keywords") or []),
        )

    def _download(self, item, root: Path, gps: bool, old: dict, new: dict, taken: set[str],
                  output_key: str) -> tuple[Download | None, str]:
        name = unique_name(item.output.name, taken)
        target = root / "full" / name
        record = {"sha256": output_key, "gps": gps}
        try:
            if old.get(name) == record and target.exists():
                download = reuse_download(target)
            else:
                download = place_download(item.output, target, keep_location=gps)
        except DownloadRefused as exc:
            log.warning("%s", exc)
            return None, ""
        new[name] = record
        kind = item.output.suffix.lstrip(".").upper() or "file"
        kind = {"JPG": "JPEG", "TIF": "TIFF"}.get(kind, kind)
        parts = [kind, f"{download.width} × {download.height} px" if download.width else "",
                 describe.size_text(download.size)]
        return download, " · ".join(p for p in parts if p)


def _open_folder(root: Path) -> dict:
    """The manifest of the gallery at ``root``; refuse a non-empty folder that is not a gallery."""
    manifest_path = root / MANIFEST
    if root.exists() and not root.is_dir():
        raise GalleryError(f"{root} is a file, not a folder")
    if manifest_path.exists():
        try:
            return json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    if root.exists() and any(root.iterdir()):
        raise GalleryError(f"{root} is not empty and holds no photobatch gallery: "
                           "choose a new folder (nothing was written)")
    root.mkdir(parents=True, exist_ok=True)
    return {}


def _write_assets(root: Path) -> dict[str, str]:
    folder = root / "assets"
    folder.mkdir(exist_ok=True)
    written = {}
    for name in ASSETS:
        text = asset_text(name)
        stem, ext = name.rsplit(".", 1)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
        target = folder / f"{stem}-{digest}.{ext}"
        if not target.exists():
            _atomic_write(target, text)
        written[name] = f"assets/{target.name}"
    for old in folder.iterdir():
        if f"assets/{old.name}" not in written.values():
            old.unlink(missing_ok=True)
    return written


def _zip(root: Path, title: str, downloads: dict, previous: dict | None):
    name = (re.sub(r"[^\w\-]+", "-", title).strip("-")[:60] or "photos") + ".zip"
    zip_path = root / name
    signature = hashlib.sha256(json.dumps(downloads, sort_keys=True).encode()).hexdigest()
    state = {"name": name, "signature": signature}
    if previous == state and zip_path.exists():
        return zip_path, zip_path.stat().st_size, state
    files = [root / "full" / n for n in downloads]
    return zip_path, write_zip(zip_path, files), state


def _prune(root: Path, cache: PictureCache, downloads: dict, zip_path: Path | None) -> None:
    # Only what this exporter made is removed: its own subfolders, and zips it wrote.
    cache.prune()
    full = root / "full"
    if full.is_dir():
        for path in full.iterdir():
            if path.name not in downloads:
                path.unlink(missing_ok=True)
    for path in root.glob("*.zip"):
        if zip_path is None or path != zip_path:
            path.unlink(missing_ok=True)


def _default_title(items: list) -> str:
    folders = {i.source.parent for i in items}
    try:
        common = Path(os.path.commonpath([str(f) for f in folders])) if folders else None
    except ValueError:
        common = None
    return common.name if common and common.name else "Photos"


def _subtitle(items: Iterable) -> str:
    items = list(items)
    recipes = sorted({i.recipe for i in items})
    dates = sorted(d[:10] for d in ((i.metadata or {}).get("date_taken") for i in items) if d)
    parts = [f"{len(items)} photo{'s' if len(items) != 1 else ''}", ", ".join(recipes)]
    if dates:
        first, last = (_day(dates[0]), _day(dates[-1]))
        parts.append(first if first == last else f"{first}\u00a0– {last}")
    return " · ".join(p for p in parts if p)


def _day(iso_date: str) -> str:
    # No-break spaces: a date never wraps in the middle on a narrow screen.
    try:
        moment = datetime.fromisoformat(iso_date)
    except ValueError:
        return iso_date
    return f"{moment.day}\u00a0{moment:%b}\u00a0{moment.year}"


def _path_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()


def _atomic_write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
