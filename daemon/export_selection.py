"""Which outputs an export gets: the done runs a selection picks, with their output on disk."""

from __future__ import annotations

import json
from pathlib import Path


def export_items(app, selection, chooser, output_under: Path | None = None):
    """ExportItems for the selection's done runs whose output exists, and the outputs missing;
    ``output_under``: only outputs in that folder (a watch folder's, whose photos may have
    been archived elsewhere since)."""
    from photobatch.catalog.queries import select_pairs
    from photobatch.plugins.exporting import ExportItem
    from photobatch.plugins.metadata.rights import with_rights
    from photobatch.recipes.variations import is_variation_name

    # What each recipe would run with now matters only to a selection by state (--stale):
    # judging it costs more than the rest of the selection (0.84 s against 0.14 s for 5,000).
    current = chooser.current if selection.narrows_runs else None
    pairs = select_pairs(app.catalog.db, selection, current)
    items, missing = [], []
    for pair in pairs:
        run = pair.run
        if run and run["status"] in ("queued", "running", "failed"):
            # Being redone, or the redo failed: the output made before is still the photo's.
            run = app.catalog.latest_done_run(pair.file["id"], pair.recipe) or run
        if not run or run["status"] != "done" or not run.get("output_path"):
            continue
        if (is_variation_name(pair.recipe) and pair.recipe not in app.recipes
                and selection.recipe != pair.recipe):
            continue  # trials of `photobatch compare`, exported only when asked for by name
        output = Path(run["output_path"])
        if output_under is not None and not output.is_relative_to(output_under):
            continue
        if not output.exists():
            missing.append(output)
            continue
        params = json.loads(run["params"] or "{}")
        if run.get("prompt"):
            params["prompt"] = run["prompt"]  # the prompt as it ran, its {caption} filled in
        metadata = _with_culling(json.loads(pair.file.get("exif") or "{}"), pair.file)
        if (params.get("output") or {}).get("metadata", "all") != "none":
            # The creator and copyright the output carries: the config's preset filled them in.
            metadata = with_rights(metadata, app.rights_for(pair.path))
        items.append(ExportItem(
            source=pair.path, output=output, recipe=pair.recipe,
            params=params, seed=run["seed"], model=run["model_id"],
            run_id=run["id"], source_sha256=pair.file["sha256"],
            output_sha256=run["output_sha256"], processed_at=run["finished_at"],
            metadata=metadata))
    return items, missing


def _with_culling(metadata: dict, file: dict) -> dict:
    """The photo's metadata with its culling as read now (a sidecar may have changed it since
    the photo was catalogued)."""
    culling = file.get("culling")
    if culling is not None:
        metadata.update(culling.as_metadata())
    return metadata
