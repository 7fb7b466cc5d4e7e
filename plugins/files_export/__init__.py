"""``photobatch export files``: Lightroom's Export dialog for the catalog's outputs: sized,
sharpened, converted, marked and named copies for a client, a website or a print lab."""

from photobatch.plugins.files_export.exporter import FilesExporter

__all__ = ["FilesExporter"]
