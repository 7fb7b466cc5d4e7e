"""Built-in plugin: the files exporter (``photobatch export files``)."""

from photobatch.plugins import hookimpl


@hookimpl
def photobatch_exporters():
    """Sized, converted, sharpened, marked copies of the outputs, as Lightroom exports them."""
    from photobatch.plugins.files_export import FilesExporter

    return [FilesExporter()]
