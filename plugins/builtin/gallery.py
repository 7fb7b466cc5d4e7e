"""Built-in plugin: the gallery exporter (``photobatch export gallery``)."""

from photobatch.plugins import hookimpl


@hookimpl
def photobatch_exporters():
    """The static before/after gallery."""
    from photobatch.plugins.gallery import GalleryExporter

    return [GalleryExporter()]
