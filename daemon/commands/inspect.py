"""``photobatch inspect``: the metadata record of any photo, ours or not."""

from __future__ import annotations

import json
from pathlib import Path

import click

_FIELDS = (
    ("make", "camera make"), ("model", "camera model"), ("lens", "lens"),
    ("exposure_time", "exposure"), ("f_number", "aperture"), ("iso", "ISO"),
    ("focal_length", "focal length"), ("date_taken", "taken"), ("gps_lat", "latitude"),
    ("gps_lon", "longitude"), ("gps_alt", "altitude"), ("orientation", "orientation"),
    ("rating", "rating"), ("label", "label"), ("keywords", "keywords"),
)


@click.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also print the raw EXIF tags read.")
def inspect(files, as_json, show_all):
    """Print the metadata record of photos: camera, exposure, date, GPS, colour profile."""
    records = [describe(path) for path in files]
    if as_json:
        click.echo(json.dumps(records if len(records) > 1 else records[0], indent=2,
                              ensure_ascii=False))
        return
    for index, record in enumerate(records):
        if index:
            click.echo()
        _print_record(record, show_all)


def describe(path: Path) -> dict:
    """Everything photobatch reads from ``path`` without decoding its pixels."""
    from photobatch.catalog.culling import newest_sidecar, read_sidecar
    from photobatch.plugins import metadata
    from photobatch.plugins.colour import profile_description
    from photobatch.plugins.images import sniff

    with open(path, "rb") as fh:
        head = fh.read(64)
    kind = sniff(head, path)
    summary = metadata.read_summary(path)
    try:
        icc = metadata.icc_profile(path)
    except metadata.MetadataError:
        icc = None
    try:
        record = metadata.read_record(path)
    except metadata.MetadataError:
        record = {}
    width, height, problem, alpha, ppi = _probe_size(path, kind)
    if kind != "heif" and (summary.get("orientation") or 1) >= 5 and width:
        width, height = height, width  # shown upright; libheif already turns HEIF upright
    if kind == "raw":
        kind = f"raw ({path.suffix.lstrip('.').upper() or 'unknown'})"
    warnings = summary.pop("warnings")
    if problem:
        warnings.append(problem)
    sidecar = newest_sidecar(path)
    culling = read_sidecar(sidecar) if sidecar is not None else None
    return {
        "file": str(path),
        "format": kind or "unknown",
        "size": path.stat().st_size,
        "width": width,
        "height": height,
        "transparency": alpha,
        "color_profile": profile_description(icc) if icc else None,
        "ppi": ppi,
        **summary,
        "rights": _rights(path),
        "photobatch": record,
        # The photographer's culling in an XMP sidecar: it has the last word over the above.
        "sidecar": {"file": sidecar.name, "rating": culling.rating, "labels": list(culling.labels),
                    "keywords": list(culling.keywords)} if culling is not None else None,
        "warnings": warnings,
    }


def _rights(path: Path) -> dict[str, str]:
    """Who made the photo and its rights, as its EXIF, IPTC and XMP say (see metadata.rights)."""
    from photobatch.plugins.metadata.exiv2 import MetadataError, open_file, read_group
    from photobatch.plugins.metadata.rights import rights_in

    try:
        image = open_file(path)
    except MetadataError:
        return {}
    try:
        return rights_in({**read_group(image, "exif", []), **read_group(image, "iptc", []),
                          **read_group(image, "xmp", [])})
    finally:
        image.close()


def _probe_size(path: Path, kind: str | None
                ) -> tuple[int | None, int | None, str | None, bool | None, float | None]:
    """Stored pixel size from the header alone (RAW: LibRaw's output size), a problem reading
    it, whether the picture has an alpha channel or a transparent colour (None: unknown), and
    the pixels per inch it says it prints at (None: it says none)."""
    try:
        if kind == "raw":
            import rawpy

            with rawpy.imread(str(path)) as raw:
                return raw.sizes.width, raw.sizes.height, None, False, None
        if kind == "heif":
            import pillow_heif

            heif = pillow_heif.open_heif(path)
            return (*heif.size, None, bool(heif.has_alpha), None)
        if kind is not None:
            from PIL import Image

            from photobatch.plugins.transparency import has_transparency

            Image.MAX_IMAGE_PIXELS = None  # a header is read, never the pixels
            with Image.open(path) as img:
                dpi = img.info.get("dpi")
                ppi = round(float(dpi[0]), 2) if dpi and float(dpi[0]) > 1 else None
                return img.width, img.height, None, has_transparency(img), ppi
    except Exception as exc:  # the record is still worth printing
        return (None, None, f"cannot read the picture's size: {' '.join(str(exc).split())}",
                None, None)
    return None, None, "not a photo format photobatch reads", None, None


def print_size(width: int, height: int, ppi: float) -> str:
    """How big ``width`` x ``height`` pixels print at ``ppi``: "20.3 x 13.5 cm (8.0 x 5.3 in)"."""
    inches = (width / ppi, height / ppi)
    return (f"{inches[0] * 2.54:.1f} x {inches[1] * 2.54:.1f} cm "
            f"({inches[0]:.1f} x {inches[1]:.1f} in)")


def _print_record(record: dict, show_all: bool) -> None:
    size = (f"{record['width']}x{record['height']}" if record["width"] else "unknown size")
    if record.get("transparency"):
        size += " with an alpha channel (PNG and TIFF outputs keep its transparency)"
    click.echo(f"{record['file']}")
    click.echo(f"  {'format':<13} {record['format']}, {size}, {record['size']:,} bytes")
    click.echo(f"  {'colour':<13} {record['color_profile'] or 'no embedded profile'}")
    if record.get("ppi") and record["width"]:
        click.echo(f"  {'resolution':<13} {record['ppi']:g} ppi: prints "
                   f"{print_size(record['width'], record['height'], record['ppi'])}")
    for key, label in _FIELDS:
        value = record[key]
        if value in (None, [], ""):
            continue
        if key == "keywords":
            value = ", ".join(value)
        elif key == "f_number":
            value = f"f/{value:g}"
        elif key == "focal_length":
            value = f"{value:g} mm"
        elif key == "exposure_time":
            value = f"{value} s"
        click.echo(f"  {label:<13} {value}")
    for key, label in (("creator", "creator"), ("notice", "copyright"),
                       ("usage_terms", "usage terms"), ("url", "licensing")):
        if record["rights"].get(key):
            click.echo(f"  {label:<13} {record['rights'][key]}")
    sidecar = record["sidecar"]
    if sidecar is not None:
        from photobatch.plugins.gallery.describe import rating_text

        words = [rating_text(sidecar) or "no rating or label", ", ".join(sidecar["keywords"])]
        click.echo(f"  {'sidecar':<13} {sidecar['file']}: {' · '.join(filter(None, words))}")
    for key, value in record["photobatch"].items():
        click.echo(f"  {'photobatch':<13} {key}: {value}")
    if show_all:
        for key, value in sorted(record["exif"].items()):
            click.echo(f"  {key} = {value}")
    for warning in record["warnings"]:
        click.echo(f"  warning: {warning}")
