"""Re-running recipes over a catalog selection: what would run, with which model, where to.

Like Lightroom's publish services flag photos edited since their last publish, a run is stale
when its recipe changed (another fingerprint), the model its recipe runs on now is another
one or has other weights under the same name, a LoRA, embedding, VAE, ControlNet or
IP-Adapter file it read was replaced, or the mask painted beside its photo was repainted. The
plan is made here; ``photobatch rerun`` queues it for the daemon or runs it now.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photobatch.catalog.queries import (
    STATE_COMPARISON,
    STATE_PENDING,
    STATE_RECIPE_CHANGED,
    STATE_RECIPE_GONE,
    STATE_UP_TO_DATE,
    Current,
    PairRow,
    Selection,
    select_pairs,
)
from photobatch.catalog.queue import RunQueue
from photobatch.daemon.app import App
from photobatch.daemon.naming import Take
from photobatch.daemon.sidecar_masks import mask_identity
from photobatch.plugins.diffusion.settings import settings_from_recipe
from photobatch.plugins.diffusion.sources import ModelError, adapters_hash, model_hash, resolve_model
from photobatch.recipes.changes import recipe_changes
from photobatch.recipes.schema import Recipe

log = logging.getLogger(__name__)


class ModelChooser:
    """The model a recipe runs on now, the way each command that made the run would choose it.

    ``--model`` given here: the recipe's own model, else that one (as ``photobatch run``). A run
    made by a watch folder: the recipe's, the folder's, the config's default (as the daemon).
    Otherwise: the recipe's, PHOTOBATCH_MODEL, the config's default. None when nothing names one.
    """

    def __init__(self, app: App, explicit: str | None = None, config=None):
        self.app = app
        self.explicit = explicit
        self.config = config
        self._ids: dict[str, str | None] = {}
        self._hashes: dict[str, str | None] = {}
        self._adapters: dict[str, str | None] = {}
        self._bases: dict[tuple[str, str | None], str | None] = {}

    def model_for(self, recipe: Recipe, run: dict[str, Any] | None) -> str | None:
        """The model reference ``recipe`` would run on for this run's photo."""
        if recipe.model:
            return recipe.model
        if self.explicit:
            return self.explicit
        folder = self._watch_folder(run)
        if folder is not None and folder.model:
            return folder.model
        if folder is not None and self.config.model:
            return self.config.model
        return self.app.default_model or (self.config.model if self.config else None)

    def model_id(self, model: str | None) -> str | None:
        """The identity the catalog records for ``model`` (None when it cannot be resolved)."""
        if not model:
            return None
        if model not in self._ids:
            try:
                self._ids[model] = resolve_model(model).model_id
            except ModelError as exc:
                log.warning("%s", exc)
                self._ids[model] = None
        return self._ids[model]

    def model_hash(self, model: str | None) -> str | None:
        """The identity of ``model``'s weights now (None: a hub id, or not resolvable)."""
        if not model:
            return None
        if model not in self._hashes:
            try:
                self._hashes[model] = model_hash(resolve_model(model))
            except (ModelError, OSError):
                self._hashes[model] = None
        return self._hashes[model]

    def adapters_hash(self, recipe: Recipe) -> str | None:
        """The identity of the adapter files ``recipe`` reads now (LoRAs, VAE, ...)."""
        if recipe.name not in self._adapters:
            try:
                self._adapters[recipe.name] = adapters_hash(settings_from_recipe(recipe))
            except (ValueError, OSError) as exc:
                log.warning("%s: %s", recipe.name, exc)
                self._adapters[recipe.name] = None
        return self._adapters[recipe.name]

    def current(self, recipe_name: str, run: dict[str, Any] | None) -> Current | None:
        """What ``recipe_name`` would run with now (None: no such recipe any more)."""
        recipe = self.app.recipes.get(recipe_name)
        if recipe is None:
            return None
        model = self.model_for(recipe, run)
        # Nothing names a model now: the family of the one the run was made with decides.
        recipe = self.app.for_model(recipe, model or (run or {}).get("model_id"))
        return Current(recipe.fingerprint, self.model_id(model), self.model_hash(model),
                       self.adapters_hash(recipe), self._mask_sha256(recipe, run),
                       self.model_config(model, recipe))

    def model_config(self, model: str | None, recipe: Recipe) -> str | None:
        """The base a single-file ``model`` would read its text encoders and VAE from now (the
        recipe's model_config, else PHOTOBATCH_MODEL_CONFIG), as the catalog records it."""
        if not model:
            return None
        key = (model, recipe.model_config)
        if key not in self._bases:
            try:
                ref = resolve_model(model, config=recipe.model_config)
                self._bases[key] = ref.config if ref.kind == "single-file" else None
            except ModelError:
                self._bases[key] = None
        return self._bases[key]

    def _mask_sha256(self, recipe: Recipe, run: dict[str, Any] | None) -> str | None:
        """The identity of the mask beside the run's photo now, for recipes that read one."""
        if recipe.mask != "sidecar" or not run or not run.get("mask_sha256"):
            return None
        row = self.app.catalog.db.execute("SELECT path FROM files WHERE id = ?",
                                          [run["file_id"]]).fetchone()
        return mask_identity(Path(row[0])) if row else None

    def left_out(self, path: Path, names: set[str]) -> bool:
        """True when ``path`` is the half of a RAW+JPEG pair (its partner among ``names``)
        that its watch folder's ``pairs``, else the config's default, does not run."""
        from photobatch.daemon.pairs import choice_for, left_out_for

        return left_out_for(path, choice_for(self.config, path), names) is not None

    def _watch_folder(self, run: dict[str, Any] | None):
        if self.config is None or not run or not run.get("output_dir"):
            return None
        out = Path(run["output_dir"])
        return next((f for f in self.config.watch if Path(f.output) == out), None)


@dataclass
class RerunItem:
    """One (file, recipe) to run again, and why."""

    pair: PairRow
    recipe: Recipe
    model: str  # the reference to load
    model_id: str
    out_dir: Path
    seed: int | Take | str | None = None  # chosen for the photo (rerun --seed), or "recipe"

    @property
    def reason(self) -> str:
        """Why it runs again: the pair's state ("stale: recipe changed", "failed", ...), or the
        seed asked for."""
        if self.seed == "recipe":
            return "the recipe's seed"
        if self.seed is not None:
            return "another seed"
        return self.pair.state

    @property
    def changes(self) -> list[str]:
        """What changed in the recipe since the run was made, when that is why it runs again
        (["strength 0.2 → 0.25", ...]; empty otherwise)."""
        run = self.pair.run or {}
        if self.reason != STATE_RECIPE_CHANGED or not run.get("params"):
            return []
        return recipe_changes(json.loads(run["params"]), self.recipe.params())


@dataclass
class RerunPlan:
    """What a rerun will do, and what it leaves alone with the reason."""

    items: list[RerunItem] = field(default_factory=list)
    up_to_date: list[PairRow] = field(default_factory=list)  # left alone unless forced
    pending: list[PairRow] = field(default_factory=list)  # queued or running already
    problems: list[tuple[PairRow, str]] = field(default_factory=list)  # cannot run: why

    def reasons(self) -> dict[str, int]:
        """How many items run again for each reason."""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts


def plan_reruns(app: App, selection: Selection, chooser: ModelChooser, *, force: bool = False,
                out_dir: Path | None = None, seed: int | str | None = None,
                takes: int = 1) -> RerunPlan:
    """Decide what to run again for ``selection``; nothing is changed. ``seed``: a seed for
    every item, "new" (a fresh random one for each) or "recipe" (the recipe's own again);
    with "new", ``takes`` runs of each, each with its own seed (A1111's batch count)."""
    pairs = select_pairs(app.catalog.db, selection, chooser.current,
                         include_unrun=bool(selection.recipe), left_out=chooser.left_out)
    plan = RerunPlan()
    for pair in pairs:
        if pair.state == STATE_PENDING:
            plan.pending.append(pair)
            continue
        if pair.state == STATE_UP_TO_DATE and not force:
            plan.up_to_date.append(pair)
            continue
        if pair.state == STATE_COMPARISON:
            plan.problems.append((pair, "a variation made by `photobatch compare`: compare again"))
            continue
        if pair.state == STATE_RECIPE_GONE or pair.recipe not in app.recipes:
            plan.problems.append((pair, f"recipe {pair.recipe!r} no longer exists"))
            continue
        recipe = app.recipes[pair.recipe]
        model = chooser.model_for(recipe, pair.run) or (pair.run or {}).get("model_id")
        recipe = app.for_model(recipe, model)
        model_id = chooser.model_id(model)
        if not model_id:
            plan.problems.append((pair, "no model to run it on: pass --model PATH" if not model
                                  else f"model {model} cannot be used (see the log)"))
            continue
        folder = out_dir or _known_output_dir(app, pair)
        if folder is None:
            plan.problems.append((pair, "no output folder is known for it: pass --out DIR"))
            continue
        # A1111's random seed ("-1"), drawn here so that the plan, the queue and the catalog
        # all record the one that runs.
        for _ in range(takes if seed == "new" else 1):
            chosen = secrets.randbelow(2**32) if seed == "new" else seed
            if seed == "new" and takes > 1:
                chosen = Take(chosen)  # each take keeps a file of its own
            plan.items.append(RerunItem(pair, recipe, model, model_id, Path(folder), chosen))
    return plan


def queue_plan(app: App, plan: RerunPlan) -> tuple[list[RerunItem], list[RerunItem]]:
    """Queue every item for the daemon (to be redone, not skipped); return (queued, already queued)."""
    runs = RunQueue(app.catalog)
    queued, already = [], []
    for item in plan.items:
        asked = {} if item.seed is None else (
            {"seed_source": "recipe"} if item.seed == "recipe"
            else {"seed": item.seed.seed, "seed_source": "take"} if isinstance(item.seed, Take)
            else {"seed": item.seed, "seed_source": "chosen"})
        run_id = runs.enqueue(file_id=item.pair.file["id"], recipe=item.recipe.name,
                              fingerprint=item.recipe.fingerprint, model_id=item.model_id,
                              output_dir=str(item.out_dir), force=True, **asked)
        (queued if run_id else already).append(item)
    return queued, already


def _known_output_dir(app: App, pair: PairRow) -> str | None:
    # Where this pair's output went; else where this photo's other outputs went; else where
    # this recipe's outputs of photos from the same folder (or shoot) went: a photo that failed
    # on its first run has none of its own.
    run = pair.run or {}
    if run.get("output_dir"):
        return run["output_dir"]
    if run.get("output_path"):
        return str(Path(run["output_path"]).parent)
    db = app.catalog.db
    row = db.execute(
        "SELECT output_dir, output_path FROM runs WHERE file_id = ? AND "
        "(output_dir IS NOT NULL OR output_path IS NOT NULL) ORDER BY (recipe = ?) DESC, id DESC "
        "LIMIT 1", [pair.file["id"], pair.recipe]).fetchone()
    # Nearest folder first: the photo's own, then the shoot it belongs to, and so on up.
    for folder in ([] if row is not None else pair.path.parents):
        prefix = str(folder).rstrip("/") + "/"
        row = db.execute(
            "SELECT r.output_dir, r.output_path FROM runs r JOIN files f ON f.id = r.file_id "
            "WHERE r.recipe = ? AND (r.output_dir IS NOT NULL OR r.output_path IS NOT NULL) "
            "AND substr(f.path, 1, ?) = ? ORDER BY r.id DESC LIMIT 1",
            [pair.recipe, len(prefix), prefix]).fetchone()
        if row is not None:
            break
    if row is None:
        return None
    return row[0] or str(Path(row[1]).parent)
