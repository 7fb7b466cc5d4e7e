"""The files exporter: each selected output as a file made for where it goes, as Lightroom's
Export dialog makes them: sized to fit, converted to the colour space asked (sRGB for screens),
sharpened for screen or paper, marked, named from a template, in a format and quality (or
under a file size), its metadata filtered.

The destination is shared with whatever else is there: a file photobatch did not export is
never written over (this export takes a numbered name instead), and ``.photobatch-export.json``
records what it wrote, so exporting again replaces its own files, keeps their names, and skips
those whose output and settings are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from photobatch.plugins.exporting import ExportError, read_photo
from photobatch.plugins.files_export.file_size import (
    LOWEST_QUALITY,
    TooBigForLimit,
    encode_within,
    jpeg_encoder,
)
from photobatch.plugins.files_export.naming import export_name, name_problem
from photobatch.plugins.files_export.rendering import render
from photobatch.plugins.files_export.sizing import parse_file_size
from photobatch.plugins.watermark import photo_mark

log = logging.getLogger(__name__)

MANIFEST = ".photobatch-export.json"
# Photos made side by side unless --jobs says: each holds a decoded picture and its copies.
DEFAULT_JOBS = 4
COLOR_SPACES = ("srgb", "adobe-rgb", "source")
SHARPEN_FOR = ("none", "screen", "matte", "glossy")
METADATA = ("all", "no-location", "copyright-only", "none")


@dataclass(frozen=True)
class FileSettings:
    """What every exported file is made with (one export's options, checked)."""

    long_edge: int = 0
    short_edge: int = 0
    megapixels: float = 0.0
    format: str = "jpeg"
    bit_depth: int = 0  # 0: the output's, as far as the format goes
    quality: int = 90
    max_size: int = 0
    color_space: str = "srgb"
    sharpen: str = "none"
    sharpen_amount: str = "standard"
    metadata: str = "no-location"
    name: str = "{name}"
    watermark: str | None = None  # the mark's key (export_mark), None for no mark

    def key(self) -> str:
        """A short digest of the settings that shape the file (not its name)."""
        values = {k: v for k, v in asdict(self).items() if k != "name"}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class FilesResult:
    """What an export did."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    left_out: list[str] = field(default_factory=list)
    zip_path: Path | None = None
    removed: int = 0

    def __str__(self) -> str:
        text = (f"exported {len(self.written) + self.unchanged} file(s) to {self.folder} "
                f"({len(self.written)} written, {self.unchanged} unchanged"
                + (f", {self.removed} removed" if self.removed else "") + ")")
        if self.zip_path:
            text += f"\nzip: {self.zip_path}"
        if self.left_out:
            text += f"\n{len(self.left_out)} left out (see above)"
        return text


class FilesExporter:
    """``photobatch export files``: sized, converted, sharpened, marked copies of the outputs."""

    name = "files"
    help = ("Files made for where they go, as Lightroom's Export dialog makes them: sized to fit "
            "(never enlarged), in sRGB for screens, sharpened for screen or paper, marked, "
            "renamed, in a format and quality or under a file size, their metadata filtered. "
            "Files photobatch did not export are never written over; exporting again updates "
            "its own.")

    @property
    def options(self):
        """The exporter's command-line options."""
        import click

        from photobatch.recipes.schema import SHARPEN_AMOUNTS, WATERMARK_POSITIONS

        return [
            click.Option(["--long-edge"], type=click.IntRange(16, 100_000), metavar="PX",
                         help="Fit the longer side to PX pixels (e.g. 2048 for the web)."),
            click.Option(["--short-edge"], type=click.IntRange(16, 100_000), metavar="PX",
                         help="Fit the shorter side to PX pixels."),
            click.Option(["--megapixels"], type=click.FloatRange(0.01, 1000), metavar="MP",
                         help="Fit to MP megapixels."),
            click.Option(["--format", "file_format"], default="jpeg", show_default=True,
                         metavar="NAME",
                         help="jpeg, png, tiff, or a format a writer plugin adds (webp...)."),
            click.Option(["--bit-depth"], type=click.Choice(["8", "16"]),
                         help="Bits per channel (TIFF, PNG); default: the output's, 16 from a "
                              "16-bit output kept in its own colour space, else 8."),
            click.Option(["--quality"], type=click.IntRange(1, 100), default=90,
                         show_default=True, help="JPEG (or plugin format) quality."),
            click.Option(["--max-size"], metavar="SIZE",
                         help="JPEG: the best quality under this file size (500K, 2M), as "
                              "Lightroom's Limit File Size To."),
            click.Option(["--color-space"], type=click.Choice(COLOR_SPACES), default="srgb",
                         show_default=True,
                         help="Converted to sRGB (screens, the web, most labs) or Adobe RGB, "
                              "or left in the output's own."),
            click.Option(["--sharpen"], type=click.Choice(SHARPEN_FOR), default="none",
                         show_default=True,
                         help="Output sharpening after the resize: for screen, matte or glossy "
                              "paper."),
            click.Option(["--sharpen-amount"], type=click.Choice(SHARPEN_AMOUNTS),
                         default="standard", show_default=True, help="How much."),
            click.Option(["--metadata"], type=click.Choice(METADATA), default="no-location",
                         show_default=True,
                         help="What the files carry: everything, everything but where it was "
                              "taken (GPS), creator and copyright only, or nothing. "
                              "copyright-only and none also leave out the recipe record."),
            click.Option(["--name", "name_template"], default="{name}", show_default=True,
                         metavar="TEMPLATE",
                         help="File names from {name} (the output's), {stem} (the original's), "
                              "{recipe}, {date}, {camera}, {n} (001, 002... in the order "
                              "taken) and {title}; a / makes subfolders ({date}/{stem})."),
            click.Option(["--title"], help="For {title} in --name, and the zip's name "
                                           "(default: the destination folder's name)."),
            click.Option(["--watermark"], metavar="TEXT",
                         help="Draw TEXT on every file; {artist}, {copyright} and {year} come "
                              "from each photo."),
            click.Option(["--watermark-image"], metavar="FILE",
                         type=click.Path(exists=True, dir_okay=False),
                         help="Draw a graphic (your logo, a PNG with transparency) instead."),
            click.Option(["--watermark-position"], default="bottom-right", show_default=True,
                         type=click.Choice(WATERMARK_POSITIONS), help="Where the mark sits."),
            click.Option(["--zip", "make_zip"], is_flag=True,
                         help="Also put the files in one zip in the destination."),
            click.Option(["--jobs"], type=click.IntRange(1, 64), metavar="N",
                         help=f"Photos made side by side (default: one per core, at most "
                              f"{DEFAULT_JOBS}: a 24 MP photo takes a few hundred MB)."),
            click.Option(["--sync"], is_flag=True,
                         help="Remove the files an earlier export wrote there that this "
                              "selection no longer has (a publish folder, kept in step)."),
        ]

    def export(self, items, destination, options) -> FilesResult:
        """Write the files of ``items`` into the folder ``destination``."""
        writers = options.writers
        settings, mark = self._settings(options, writers)
        root = Path(destination).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot write to {root}: {exc.strerror or exc}") from None
        _remove_stale_temps(root)
        previous = _read_manifest(root)
        items = sorted(items, key=lambda i: ((i.metadata or {}).get("date_taken") or "",
                                             i.source.name, i.recipe))
        title = options.get("title") or root.resolve().name
        writer = writers.get(_writer_name(settings.format))
        extension = getattr(writer, "extension", "." + settings.format)
        names = _assign_names(items, settings.name, title, extension, root, previous)
        result, files = FilesResult(root), {}
        todo = []
        for item, name in zip(items, names):
            entry = {"output": str(item.output), "output_sha256": item.output_sha256,
                     "settings": settings.key()}
            if _unchanged(previous.get(name), entry, root / name):
                files[name] = previous[name]
                result.unchanged += 1
            else:
                todo.append((item, name, entry))

        def make(job):
            item, name, entry = job
            try:
                entry["sha256"] = self._write(item, root / name, settings,
                                              photo_mark(mark, dict(item.metadata or {})),
                                              writer, options)
                entry.update(_stamp(root / name))
                return job, None
            except Exception as exc:  # one photo must not cost the others their files
                log.debug("export of %s failed", item.output, exc_info=True)
                return job, exc

        jobs = max(1, int(options.get("jobs") or min(os.cpu_count() or 1, DEFAULT_JOBS)))
        with ThreadPoolExecutor(jobs, thread_name_prefix="pb-export") as pool:
            # Pillow decodes, resizes and encodes outside the GIL: photos side by side use
            # the cores (the metadata step takes its turn, exiv2 being one at a time).
            made = pool.map(make, todo)
            for (item, name, entry), exc in options.progress(
                    made, total=len(todo), desc="export"):
                if exc is not None:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    result.left_out.append(f"{item.source.name} [{item.recipe}]: {reason}")
                    options.echo(f"left out {item.source.name} [{item.recipe}]: {reason}")
                    continue
                files[name] = entry
                result.written.append(root / name)
        earlier = {k: v for k, v in previous.items() if k not in files}
        if options.get("sync"):
            # As a Lightroom publish service: what the selection no longer has goes, but
            # only files as this exporter left them.
            for name, entry in list(earlier.items()):
                path = root / name
                if not path.exists() or _still_ours(path, entry):
                    path.unlink(missing_ok=True)
                    del earlier[name]
                    result.removed += 1
                    _remove_empty_parents(path.parent, root)
        _write_manifest(root, {**earlier, **files})
        if options.get("make_zip") and files:
            from photobatch.plugins.gallery.downloads import unique_name, write_zip

            zip_name = unique_name(f"{title}.zip", set())
            result.zip_path = root / zip_name
            write_zip(result.zip_path, [root / name for name in sorted(files)], root)
        if not files and result.left_out:
            raise ExportError("no file could be exported (see the reasons above)")
        return result

    def _settings(self, options, writers) -> tuple[FileSettings, object]:
        from photobatch.plugins.watermark import export_mark

        sizes = [k for k in ("long_edge", "short_edge", "megapixels") if options.get(k)]
        if len(sizes) > 1:
            raise ExportError("--" + " and --".join(s.replace("_", "-") for s in sizes)
                              + ": a file is fitted to one of them (choose one)")
        fmt = (options.get("file_format") or "jpeg").lower()
        if _writer_name(fmt) not in writers:
            raise ExportError(f"--format {fmt}: no writer for it (known: "
                              f"{', '.join(sorted(writers.items))}; a writer plugin can add one)")
        bit_depth = int(options.get("bit_depth") or 0)
        depths = tuple(getattr(writers.get(_writer_name(fmt)), "bit_depths", (8,)))
        if bit_depth and bit_depth not in depths:
            raise ExportError(f"--bit-depth {bit_depth}: {fmt} files hold "
                              f"{' or '.join(map(str, depths))} bits per channel")
        max_size = 0
        if options.get("max_size"):
            if fmt != "jpeg":
                raise ExportError(f"--max-size is for JPEG files; {fmt} has no quality to lower")
            try:
                max_size = parse_file_size(options.get("max_size"))
            except ValueError as exc:
                raise ExportError(f"--max-size: {exc}") from None
        template = options.get("name_template") or "{name}"
        problem = name_problem(template)
        if problem:
            raise ExportError(f"--name {template!r} {problem}")
        try:
            marked = export_mark(options.get("watermark"), options.get("watermark_image"),
                                 options.get("watermark_position") or "bottom-right")
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        settings = FileSettings(
            long_edge=options.get("long_edge") or 0, short_edge=options.get("short_edge") or 0,
            megapixels=options.get("megapixels") or 0.0, format=fmt, bit_depth=bit_depth,
            quality=options.get("quality") or 90, max_size=max_size,
            color_space=options.get("color_space") or "srgb",
            sharpen=options.get("sharpen") or "none",
            sharpen_amount=options.get("sharpen_amount") or "standard",
            metadata=options.get("metadata") or "no-location", name=template,
            watermark=marked[1] if marked else None)
        return settings, (marked[0] if marked else None)

    def _write(self, item, target: Path, settings: FileSettings, mark, writer, options) -> str:
        """Make ``item``'s file at ``target``; return its sha256."""
        from photobatch.catalog.hashing import file_sha256
        from photobatch.plugins.metadata import write_output_metadata
        from photobatch.plugins.metadata.record import read_record

        made = render(read_photo(item.output, options.readers,
                                 preview=_half_is_enough(item.output, settings)),
                      settings, mark, writer)
        write_options: dict = {"icc_profile": made.icc}
        if hasattr(writer, "bit_depths"):
            write_options.update(bit_depth=made.bits, progressive=False)
        if made.alpha is not None:
            write_options["alpha"] = made.alpha
        # Our record (recipe, prompt, seed, model) goes only with the policies that keep
        # descriptive metadata: a client's copy need not say how it was made.
        record = (read_record(item.output) if settings.metadata in ("all", "no-location") else {})
        width, height = made.size
        target.parent.mkdir(parents=True, exist_ok=True)  # a subfolder of the name template
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            def write_file(data: bytes | None, quality: int) -> int:
                if data is None:
                    writer.write(made.pixels, temp, quality=quality, **write_options)
                else:
                    temp.write_bytes(data)
                write_output_metadata(item.output, temp, width=width, height=height,
                                      record=record, policy=settings.metadata, icc="output",
                                      pixels=made.pixels)
                return temp.stat().st_size

            final = write_file(None, settings.quality)
            if settings.max_size and final > settings.max_size:
                encode = jpeg_encoder(writer.write, made.pixels, **write_options)
                overhead = final - len(encode(settings.quality))  # metadata and thumbnail
                limit = settings.max_size - overhead
                for _ in range(3):  # the thumbnail's size moves a little with the quality
                    try:
                        data, quality = encode_within(encode, limit, settings.quality)
                    except TooBigForLimit:
                        raise TooBigForLimit(
                            f"over {settings.max_size // 1000}K even at quality "
                            f"{LOWEST_QUALITY} (its metadata takes {overhead // 1000}K): export "
                            "it smaller (--long-edge) or allow more (--max-size)") from None
                    final = write_file(data, quality)
                    if final <= settings.max_size:
                        break
                    limit -= final - settings.max_size
                else:
                    raise TooBigForLimit(f"over {settings.max_size // 1000}K with its metadata")
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return file_sha256(target)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents below ``root`` while they are empty (a subfolder of
    the name template whose last file went)."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or gone
        folder = folder.parent


def _remove_stale_temps(root: Path) -> None:
    """Remove the half-written files (``.NAME.PID.tmp``) an export killed midway left behind;
    never one of an export still running."""
    import re
    import socket

    from photobatch.catalog.workers import pid_alive

    for temp in root.rglob(".*.tmp"):
        found = re.fullmatch(r"\..+\.(\d+)\.tmp", temp.name)
        if found and not pid_alive(f"{found.group(1)}@{socket.gethostname()}"):
            temp.unlink(missing_ok=True)


def _half_is_enough(output: Path, settings: FileSettings) -> bool:
    """Whether the file is at most half the output's size each way: the output may then be
    decoded at half scale (libjpeg's DCT scaling; several times faster, as sharp)."""
    from PIL import Image

    from photobatch.plugins.files_export.sizing import fitted_size

    try:
        with Image.open(output) as img:  # the header only; outputs are upright
            width, height = img.size
    except Exception:
        return False  # the decode says why
    fitted = fitted_size(width, height, long_edge=settings.long_edge,
                         short_edge=settings.short_edge, megapixels=settings.megapixels)
    return fitted[0] * 2 <= width and fitted[1] * 2 <= height


def _writer_name(fmt: str) -> str:
    from photobatch.plugins.output_options import writer_name

    return writer_name(fmt)


def _assign_names(items, template: str, title: str, extension: str, root: Path,
                  previous: dict) -> list[str]:
    """A file name for each of ``items`` (in order): the one an earlier export gave its output
    while the template still gives it, else the template's, numbered (-2, -3...) past names
    taken in this export and files in ``root`` that are not ours."""
    width = max(3, len(str(len(items))))
    wanted = [export_name(template, item, n, width, title) + extension
              for n, item in enumerate(items, start=1)]
    ours_by_output = {entry.get("output"): name for name, entry in previous.items()}
    names: list[str | None] = [None] * len(items)
    taken: set[str] = set()
    for i, item in enumerate(items):  # first, each output keeps the name it had
        earlier = ours_by_output.get(str(item.output))
        if earlier and _same_base(earlier, wanted[i]) and earlier.lower() not in taken:
            names[i] = earlier
            taken.add(earlier.lower())
    for i, name in enumerate(names):
        if name is not None:
            continue
        stem = wanted[i][:-len(extension)] if extension else wanted[i]
        candidate, k = wanted[i], 2
        while candidate.lower() in taken or _foreign(root, candidate, previous):
            candidate = f"{stem}-{k}{extension}"
            k += 1
        taken.add(candidate.lower())
        names[i] = candidate
    return names


def _foreign(root: Path, name: str, previous: dict) -> bool:
    """Whether ``root``/``name`` is a file this exporter did not write (or was changed since)."""
    path = root / name
    return path.exists() and not _still_ours(path, previous.get(name))


def _stamp(path: Path) -> dict:
    """What tells a file unchanged without reading it: its size and modification time."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _still_ours(path: Path, entry: dict | None) -> bool:
    """Whether ``path`` is the file a manifest ``entry`` records (same size and time, as rsync
    tells; else the same sha256)."""
    if not entry or not entry.get("sha256"):
        return False
    try:
        if {"size": entry.get("size"), "mtime_ns": entry.get("mtime_ns")} == _stamp(path):
            return True
    except OSError:
        return False
    from photobatch.catalog.hashing import file_sha256

    return file_sha256(path) == entry["sha256"]


def _same_base(earlier: str, wanted: str) -> bool:
    """Whether ``earlier`` is ``wanted`` or a numbered form of it (``stem-2.jpg``)."""
    if earlier == wanted:
        return True
    stem, _, ext = wanted.rpartition(".")
    head, _, number = earlier.rpartition(".")[0].rpartition("-")
    return head == stem and number.isdigit() and earlier.endswith("." + ext)


def _unchanged(entry: dict | None, wanted: dict, target: Path) -> bool:
    """Whether the file an earlier export wrote at ``target`` (its manifest ``entry``) is what
    this one would write: same output, same settings, and the file still as written."""
    if not entry or any(entry.get(k) != wanted[k] for k in ("output", "output_sha256", "settings")):
        return False
    return wanted["output_sha256"] is not None and target.is_file() and _still_ours(target, entry)


def _read_manifest(root: Path) -> dict:
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _write_manifest(root: Path, files: dict) -> None:
    from photobatch.plugins.metadata.writing import atomic_write

    atomic_write(root / MANIFEST, json.dumps({"generator": "photobatch", "files": files},
                                             indent=2, sort_keys=True).encode())
