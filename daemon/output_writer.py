"""Write an output: its name and folder, the pixels, the metadata and record, atomically.

The file goes to a dot-prefixed temporary name in the destination folder (invisible to
watchers) and is renamed into place once its metadata is written and it is on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from photobatch.catalog.hashing import file_sha256
from photobatch.daemon.naming import claimed_output_path, name_tokens, output_folder, output_name
from photobatch.plugins import metadata
from photobatch.plugins.colour import convert_to_space
from photobatch.plugins.images import resize_pixels
from photobatch.plugins.output_options import writer_name, writer_options
from photobatch.plugins.transparency import alpha_at_depth, fit_alpha
from photobatch.recipes.schema import Recipe


class OutputWriter:
    """Writes outputs for one App (its writers and catalog)."""

    def __init__(self, app):
        self.app = app

    def write(self, source: Path, recipe: Recipe, image: Image.Image, icc: bytes | None,
               sha: str, seed: int, model_id: str, run_id: int, out_dir: Path,
               source_bits: int = 8, summary: dict | None = None,
               file_id: int | None = None, provenance: dict | None = None,
               take: bool = False, alpha=None) -> Path:
        """Write ``image`` (PIL, or 16-bit pixels) as ``recipe``'s output of ``source``.

        ``provenance``: more of what made it for the XMP record (model and adapter file
        identities, precision); empty values are left out. The photographer's rating, label and
        keywords in an XMP sidecar beside ``source`` go into the output, as Lightroom exports do.
        A ``take`` (one of several, see naming.Take) gets a file of its own. ``alpha``: the
        source's transparency (see DecodedImage.alpha), only where ``keeps_alpha(recipe)``,
        ``image`` then in straight colours (transparency.straight_output).
        """
        writer = self.app.writers.get(writer_name(recipe.output.format))
        options = writer_options(recipe.output, writer, source_bits)
        rights = self.app.rights_for(source)
        if alpha is not None:
            options["alpha"] = with_alpha(image, alpha, options.get("bit_depth", 8))
        # A photo exported again over itself is the same photo: its earlier versions' outputs
        # are its own to replace, and its catalog number ({seq}) is the first version's.
        versions = self.app.catalog.versions(file_id) if file_id is not None else []
        shas = {sha, *(v["sha256"] for v in versions)}
        tokens = name_tokens(recipe, source, summary, min((v["id"] for v in versions), default=file_id),
                             seed)
        folder = output_folder(recipe, out_dir, tokens)
        folder.mkdir(parents=True, exist_ok=True)
        with claimed_output_path(folder, output_name(recipe, source, writer.extension, tokens, take),
                                 recipe, lambda path: self.is_ours(path, shas, recipe)) as final:
            # Dot-prefixed temp name in the same folder: invisible to watchers, and the rename is atomic.
            temp = final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")
            try:
                if isinstance(image, Image.Image):
                    image, icc = convert_to_space(image, icc, recipe.output.color_space)
                    width, height = image.size
                else:  # 16-bit pixels (H x W x 3): kept only with color_space "source"
                    height, width = image.shape[:2]
                writer.write(image, temp, icc_profile=icc, **options)
                metadata.write_output_metadata(
                    source, temp, width=width, height=height,
                    policy=recipe.output.metadata, icc=icc or "source", pixels=image,
                    record={
                        "Recipe": recipe.name,
                        "RecipeFingerprint": recipe.fingerprint,
                        "Params": json.dumps(recipe.params(), sort_keys=True, separators=(",", ":")),
                        "Seed": str(seed),
                        "Model": model_id,
                        "SourceFile": source.name,
                        "SourceSHA256": sha,
                        "RunID": str(run_id),
                        **{k: str(v) for k, v in (provenance or {}).items() if v},
                    },
                    photographer=_photographer(source), ppi=recipe.output.ppi,
                    rights=rights.values((summary or {}).get("date_taken")) if rights else None,
                    rights_replace=bool(rights and rights.replace),
                )
                with open(temp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)
        if recipe.output.sidecar != "none":
            metadata.write_sidecar(final, metadata.sidecar_path(final, recipe.output.sidecar))
        return final

    def keeps_alpha(self, recipe: Recipe) -> bool:
        """True when the writer of ``recipe``'s output format keeps transparency."""
        writer = self.app.writers.get(writer_name(recipe.output.format))
        return bool(getattr(writer, "keeps_alpha", False))

    def is_ours(self, path: Path, shas: set[str], recipe: Recipe) -> bool:
        """True when ``path`` is an output of ``recipe`` made from one of ``shas`` (the photo's
        content, and its earlier versions'), so it may be replaced."""
        # The file's own XMP record says whose output it is, even when a crash came between
        # the rename and the catalog update.
        try:
            record = metadata.read_record(path)
        except metadata.MetadataError:
            record = {}
        if record.get("SourceSHA256") in shas and record.get("Recipe") == recipe.name:
            return True
        # No record (metadata policy "none" keeps it; a foreign file has none): ours only if the
        # catalog wrote exactly these bytes there.
        marks = ",".join("?" * len(shas))
        rows = list(self.app.catalog.db.query(
            "SELECT r.output_sha256 FROM runs r JOIN files f ON f.id = r.file_id "
            f"WHERE r.output_path = ? AND f.sha256 IN ({marks}) AND r.recipe = ?",
            [str(path), *sorted(shas), recipe.name]))
        if not rows:
            return False
        try:
            current = file_sha256(path)
        except OSError:
            return False
        return any(row["output_sha256"] == current for row in rows)


def _photographer(source: Path) -> dict | None:
    """The rating, label and keywords of the source's XMP sidecar as XMP values (None: none)."""
    from photobatch.catalog.culling import sidecar_culling

    culling = sidecar_culling(source)
    return culling.as_xmp() if culling is not None else None


def fit_within(image, max_side: int):
    """``image`` (PIL, or a uint16 H x W x 3 array) scaled down to fit ``max_side``, aspect kept."""
    height, width = (image.height, image.width) if isinstance(image, Image.Image) else image.shape[:2]
    if max(width, height) <= max_side:
        return image
    scale = max_side / float(max(width, height))
    return resize_pixels(image, (max(1, round(width * scale)), max(1, round(height * scale))))


def with_alpha(image, alpha, bits: int):
    """``alpha`` at ``image``'s size and ``bits``, for a writer that keeps transparency."""
    size = image.size if isinstance(image, Image.Image) else image.shape[1::-1]
    return alpha_at_depth(fit_alpha(alpha, size), bits)


def to_8bit(pixels) -> Image.Image:
    """8-bit RGB from 16-bit pixels (the high byte)."""
    import numpy as np

    return Image.fromarray((np.asarray(pixels) >> 8).astype(np.uint8))
