"""The built-in gallery exporter: a static before/after HTML gallery (``photobatch export gallery``).

One job per module: ``describe`` (the words of the panels), ``images`` (thumbnails and previews,
made once), ``downloads`` (full-resolution copies and the zip), ``page`` (index.html, escaped),
``exporter`` (putting it together). The page's HTML, CSS and script are package data in
``assets/``.
"""

from photobatch.plugins.gallery.exporter import GalleryError, GalleryExporter, GalleryResult

__all__ = ["GalleryError", "GalleryExporter", "GalleryResult"]
