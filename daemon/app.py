"""The application object: plugin registries, recipes and the catalog, owned in one place."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from photobatch.catalog.plugin_errors import record_plugin_failures
from photobatch.catalog.store import Catalog
from photobatch.daemon.paths import default_catalog_path, default_recipe_dir
from photobatch.plugins.manager import build_plugin_manager, collect, contributions, notify
from photobatch.recipes.loader import load_recipes
from photobatch.recipes.schema import Recipe, RecipeError


class UsageError(Exception):
    """A problem the user can fix (unknown recipe, no model); shown without a traceback."""


class App:
    """Everything a command needs; no module-level state, so tests can build as many as they like."""

    def __init__(self, catalog_path: Path | None = None, recipe_dirs=(), model: str | None = None,
                 plugin_manager=None, plugins_dir: Path | None = None, disabled_plugins=(),
                 device: str | None = None, precision: str | None = None, rights=None,
                 notifications=None, folder_rights=(), auto_exports=()):
        # plugins_dir and disabled_plugins only matter when no plugin manager is given.
        self.pm = plugin_manager or build_plugin_manager(plugins_dir=plugins_dir,
                                                         disabled_plugins=disabled_plugins)
        self.readers = collect(self.pm, "photobatch_readers", "reader")
        self.writers = collect(self.pm, "photobatch_writers", "writer")
        self.runners = collect(self.pm, "photobatch_runners", "runner")
        for runner in self.runners:
            if hasattr(runner, "use_readers"):
                # Reference photos (style-match) are read as the photos are.
                runner.use_readers(self.readers)
        if device:
            self.use_device(device)
        if precision:
            self.use_precision(precision)
        self.steps = collect(self.pm, "photobatch_steps", "step")
        self.exporters = collect(self.pm, "photobatch_exporters", "exporter")
        self.face_detectors = collect(self.pm, "photobatch_face_detectors", "face detector")
        folders = [Path(p) for _, result in contributions(self.pm, "photobatch_recipe_dirs")
                   for p in result]
        user_dir = default_recipe_dir()
        self.recipe_folders = folders + ([user_dir] if user_dir.is_dir() else []) + [
            Path(p) for p in recipe_dirs]
        self.recipes = load_recipes(self.recipe_folders)
        self._check_recipe_references()
        self.catalog_path = Path(catalog_path) if catalog_path else default_catalog_path()
        self.default_model = model or os.environ.get("PHOTOBATCH_MODEL")
        # The config's [copyright] preset (metadata.rights.Rights), written into every output.
        self.rights = rights
        # Watch folders' own presets ((folder, Rights), deepest first): a second shooter's.
        self.folder_rights = tuple(folder_rights)
        # The config's [notify] settings (builtin.notifications.NotifySettings), or None.
        self.notifications = notifications
        # (output folder, config.ExportSpec) of the watch folders' [[watch.export]] tables:
        # what builtin.auto_export makes again whenever the daemon has caught up.
        self.auto_exports = tuple(auto_exports)
        # SQLite connections belong to one thread: each worker thread opens its own (WAL
        # lets them read concurrently and serialises their short writes).
        self._local = threading.local()
        self._opened: list[Catalog] = []
        self._opened_lock = threading.Lock()
        self._infos: dict[tuple, object] = {}  # (model, config) -> ModelInfo | None

    @property
    def catalog(self) -> Catalog:
        """This thread's connection to the catalog, opened (and migrated) on first use."""
        cat = getattr(self._local, "catalog", None)
        if cat is None:
            # One thread at a time: the first connection creates and migrates the catalog, and
            # two migrating at once would find it locked.
            with self._opened_lock:
                cat = self._local.catalog = Catalog(self.catalog_path)
                self._opened.append(cat)
        return cat

    def use_settings(self, *, rights=None, folder_rights=(), notifications=None, auto_exports=(),
                     **_device_and_precision) -> None:
        """Take a reloaded config's copyright presets, notification target and exports
        (Config.app_settings; its device and precision go through use_device/use_precision)."""
        self.rights = rights
        self.folder_rights = tuple(folder_rights)
        self.notifications = notifications
        self.auto_exports = tuple(auto_exports)

    def use_device(self, device: str | None) -> None:
        """Have every runner that can choose load its models on ``device`` from now on."""
        for runner in self.runners:
            if hasattr(runner, "use_device"):
                runner.use_device(device)

    def use_precision(self, precision: str | None) -> None:
        """Have every runner that can choose compute in ``precision`` from now on."""
        for runner in self.runners:
            if hasattr(runner, "use_precision"):
                runner.use_precision(precision)

    def model_fills_the_cpu(self, recipe_name: str) -> bool:
        """True when the recipe's runner runs its model on the CPU with a thread on every core:
        the host's own stages then have no core to themselves and compete with the model."""
        recipe = self.recipes.get(recipe_name)
        if recipe is None or recipe.runner not in self.runners:
            return False
        device = str(getattr(self.runners.get(recipe.runner), "device", "") or "")
        if device.split(":")[0] != "cpu":
            return False
        import torch

        return torch.get_num_threads() >= (os.cpu_count() or 1)

    def _check_recipe_references(self) -> None:
        """Steps, face detectors and writers a recipe names must exist: a typo fails at load,
        not per file."""
        from photobatch.plugins.output_options import output_problem

        for recipe in self.recipes.values():
            problem = output_problem(recipe.output, self.writers)
            if problem:
                raise RecipeError(f"recipe {recipe.name!r} ({recipe.source}): {problem}")
            for name, _ in recipe.post:
                if name not in self.steps:
                    known = ", ".join(sorted(self.steps.items)) or "none"
                    raise RecipeError(f"recipe {recipe.name!r} ({recipe.source}): post step {name!r} "
                                      f"is not contributed by any plugin (known: {known})")
            if recipe.mask == "faces" and recipe.face_detector not in self.face_detectors:
                known = ", ".join(sorted(self.face_detectors.items)) or "none"
                raise RecipeError(f"recipe {recipe.name!r} ({recipe.source}): face_detector "
                                  f"{recipe.face_detector!r} does not exist (known: {known})")

    def recipe(self, name: str) -> Recipe:
        """The recipe called ``name``, or a UsageError listing those that exist."""
        if name in self.recipes:
            return self.recipes[name]
        from photobatch.recipes.suggest import did_you_mean

        variants = sorted(n for n in self.recipes if n.startswith(f"{name}:"))
        if variants:  # a recipe of variants with no default: the user says which
            raise UsageError(f"recipe {name!r} has variants and no default; say which: "
                             f"{', '.join(variants)}")
        known = ", ".join(sorted(self.recipes)) or "none"
        raise UsageError(f"no recipe called {name!r}{did_you_mean(name, self.recipes)} "
                         f"(known: {known})")

    def check_runnable(self, recipe: Recipe, model: str | None = None) -> None:
        """Refuse, before any file, a recipe that is only a template (a style match with no
        reference photo), one whose LoRAs, embeddings, VAE, ControlNet or IP-Adapter name a
        path with nothing there, or a ``model`` that cannot be there (a path that
        does not exist, a pickle checkpoint, a folder that is no pipeline): the same error for
        every photo would tell the user nothing new."""
        ip = recipe.ip_adapter
        if (ip is not None or recipe.reference_colors != "none") and not (ip and ip.reference):
            raise UsageError(
                f"recipe {recipe.name!r} needs a reference photo: make your own with `photobatch "
                f"recipes new my-look --from {recipe.name}` and set ip_adapter.reference")
        self.check_output(recipe)
        self.check_watermark(recipe)
        self.check_references(recipe)
        self.check_files(recipe)
        if model:
            self.check_model(model, recipe.model_config)
            self.check_runtime(recipe)
            self.check_quantized(recipe, model)
            self.check_family(recipe, model)
            self.check_controlnets(recipe, model)
            if recipe.refiner is not None:
                self.check_refiner(recipe, model)
            if recipe.pag is not None:
                self.check_pag(recipe, model)

    def check_references(self, recipe: Recipe) -> None:
        """Refuse a reference photo the readers cannot decode (a RAW LibRaw rejects, a cut-short
        file): the recipe loader only looked at its first bytes."""
        from photobatch.plugins.reference_photos import read_reference

        for path in recipe.ip_adapter.references if recipe.ip_adapter else ():
            try:
                read_reference(path, self.readers)
            except ValueError as exc:
                raise UsageError(f"recipe {recipe.name!r}: {exc}") from None

    def rights_for(self, path: Path):
        """The copyright preset for the photo at ``path``: its watch folder's own, else the
        config's (None: none)."""
        from photobatch.daemon.config import rights_for

        return rights_for(path, self.folder_rights, self.rights)

    def check_watermark(self, recipe: Recipe) -> None:
        """Refuse a watermark graphic Pillow cannot decode (the loader only checked its header):
        an output must not go out unmarked."""
        from photobatch.plugins.watermark import logo_at

        if recipe.output.watermark_image:
            try:
                logo_at(recipe.output.watermark_image)
            except (ValueError, OSError) as exc:
                raise UsageError(f"recipe {recipe.name!r}: {exc}") from None

    def check_output(self, recipe: Recipe) -> None:
        """Refuse a recipe whose output format no writer writes, or at a depth it cannot."""
        from photobatch.plugins.output_options import output_problem

        problem = output_problem(recipe.output, self.writers)
        if problem:
            raise UsageError(f"recipe {recipe.name!r}: {problem}")

    def check_files(self, recipe: Recipe) -> None:
        """Refuse a recipe whose LoRAs, embeddings, VAE, ControlNet or IP-Adapter name a path
        with nothing there (hub ids pass: the hub answers for them when they load)."""
        from photobatch.plugins.diffusion.settings import settings_from_recipe
        from photobatch.plugins.diffusion.sources import missing_files

        missing = missing_files(settings_from_recipe(recipe))
        if missing:
            raise UsageError(f"recipe {recipe.name!r} reads files that are not there: "
                             + "; ".join(missing))

    def check_runtime(self, recipe: Recipe) -> None:
        """Refuse, before any file, a device asked for that is not here (CUDA with a PyTorch
        built without it, cuda:1 on a one-GPU machine, MPS off a Mac) or a precision that is no
        precision, for runners that can tell (a ``runtime_problem()`` method, as the built-in
        ones have)."""
        check = getattr(self.runners.get(recipe.runner), "runtime_problem", None)
        problem = check() if check else None
        if problem:
            raise UsageError(problem)

    def check_quantized(self, recipe: Recipe, model: str) -> None:
        """Refuse, before any file, a model folder saved with quantized weights that cannot
        load here: bitsandbytes on the CPU, or a quantizer whose package is not installed (a
        local folder, a hub id's cached copy, or a single file's ``model_config`` base)."""
        from photobatch.plugins.diffusion.quantized import quantized_folder_problem
        from photobatch.plugins.diffusion.sources import ModelError, cached_snapshot, resolve_model

        if recipe.runner not in ("img2img", "inpaint"):
            return  # a plugin's runner judges its own models
        try:
            ref = resolve_model(model, config=recipe.model_config)
        except (ModelError, ValueError):
            return  # check_model said why
        device = str(getattr(self.runners.get(recipe.runner), "device", "") or "cpu")
        own = ref.location if ref.kind != "single-file" else None
        for label, location in ((f"model {model}", own), (f"model_config {ref.config}", ref.config)):
            if not location:
                continue
            folder = location if Path(location).is_dir() else cached_snapshot(location)
            problem = folder and quantized_folder_problem(folder, device, label)
            if problem:
                raise UsageError(problem)

    def check_family(self, recipe: Recipe, model: str) -> None:
        """Refuse, before any file, a recipe that a flow-matching model (SD 3.x, FLUX.1) cannot
        run: a sampler or feature of the UNet models, true_cfg on a UNet model, or a reference
        photo handed to a model that reads none itself (ip_adapter model "native") (told from a
        local model or a hub id's cached copy without loading it; a hub id not cached yet shows
        when it loads)."""
        from photobatch.plugins.diffusion.flow import flow_problem, true_cfg_problem
        from photobatch.plugins.diffusion.native_reference import native_reference_problem
        from photobatch.plugins.diffusion.settings import settings_from_recipe

        if recipe.runner not in ("img2img", "inpaint"):
            return  # a plugin's runner judges its own models
        info = self._model_info(model, recipe.model_config)
        if info is None:
            return
        problem = native_reference_problem(settings_from_recipe(recipe.for_family(info.table)), info)
        if problem:
            raise UsageError(f"recipe {recipe.name!r}: {problem}")
        if not info.family.flow:
            if recipe.for_family(info.table).true_cfg > 1:
                raise UsageError(f"recipe {recipe.name!r}: {true_cfg_problem(info.family)}")
            return
        problem = flow_problem(settings_from_recipe(recipe.for_family(info.table)), info.family,
                               info.variant, distilled=info.distilled)
        if problem:
            raise UsageError(f"recipe {recipe.name!r}: {problem}")

    def check_controlnets(self, recipe: Recipe, model: str) -> None:
        """Refuse, before any file, a ControlNet that a local folder shows is made for the other
        kind of model, or a Union ControlNet mode it does not read (told from its config.json,
        in its folder or a hub id's cached copy, and the model's family without loading either;
        a hub id not cached yet shows when it loads)."""
        from photobatch.plugins.diffusion.controlnet import folder_problem
        from photobatch.plugins.diffusion.settings import settings_from_recipe

        if recipe.controlnet is None or recipe.runner not in ("img2img", "inpaint"):
            return
        info = self._model_info(model, recipe.model_config)
        if info is None:
            return
        settings = settings_from_recipe(recipe.for_family(info.table))
        for unit in settings.controlnets:
            problem = folder_problem(settings.resolve_path(unit.model), unit, info.family.name)
            if problem:
                raise UsageError(f"recipe {recipe.name!r}: {problem}")

    def check_pag(self, recipe: Recipe, model: str) -> None:
        """Refuse perturbed-attention guidance where diffusers has no pipeline for it (told from
        a local model's or cached hub copy's family without loading it; else when it loads)."""
        from photobatch.plugins.diffusion.families import pag_problem

        info = self._model_info(model, recipe.model_config)
        if info is None:
            return
        masked = recipe.runner == "inpaint" or recipe.mask != "none" or info.inpainting
        problem = pag_problem(info.family, "inpaint" if masked else "img2img",
                              recipe.controlnet is not None)
        if problem:
            raise UsageError(f"recipe {recipe.name!r}: {problem}")

    def check_refiner(self, recipe: Recipe, model: str) -> None:
        """Refuse a refiner that cannot take over: both models must be SDXL (told from local
        folders, files and cached hub copies without loading them; else when it loads)."""
        from photobatch.plugins.diffusion.refiner import refiner_problem_for_families
        from photobatch.plugins.diffusion.settings import settings_from_recipe

        refiner = settings_from_recipe(recipe).resolve_path(recipe.refiner.model)
        self.check_model(refiner)
        base_info = self._model_info(model, recipe.model_config)
        refiner_info = self._model_info(refiner, None)
        problem = refiner_problem_for_families(base_info and base_info.family,
                                               refiner_info and refiner_info.family, model, refiner)
        if problem:
            raise UsageError(f"recipe {recipe.name!r}: {problem}")

    def check_model(self, model: str, config: str | None = None) -> None:
        """Refuse a model reference that cannot be loaded, before any file. Cheap: no weights
        are read (a single file's header is; a hub id is checked for its form, and its cached
        copy's model_index.json where there is one; whether it is cached shows when it loads)."""
        from photobatch.plugins.diffusion.families import (
            family_of_single_file,
            folder_class_name,
            unsupported_pipeline,
        )
        from photobatch.plugins.diffusion.loading import (
            flow_single_file_problem,
            needs_base,
            scaled_file_problem,
        )
        from photobatch.plugins.diffusion.sources import (
            SINGLE_FILE_SUFFIXES,
            ModelError,
            cached_snapshot,
            incomplete_folder,
            resolve_model,
        )

        problem = None
        try:
            ref = resolve_model(model, config=config)
            if ref.kind == "single-file" and ref.location.lower().endswith(SINGLE_FILE_SUFFIXES):
                info = family_of_single_file(ref.location)  # a LoRA or a broken file is none
                problem = flow_single_file_problem(ref, info) if needs_base(ref, info) else None
                problem = problem or scaled_file_problem(ref.location, info)
        except (ModelError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        if ref.kind == "folder":
            problem = incomplete_folder(ref.location)
        if ref.kind == "folder" and not problem:
            problem = unsupported_pipeline(folder_class_name(ref.location), f"model folder {ref.location}")
        if ref.kind == "hub" and (snapshot := cached_snapshot(ref.location)):
            # Its cached copy tells what it is, as a folder does.
            problem = unsupported_pipeline(folder_class_name(snapshot), f"model {ref.location}")
        if problem:
            raise UsageError(problem)

    def for_model(self, recipe: Recipe, model: str | None) -> Recipe:
        """``recipe`` as it runs on ``model``: its ``[family.NAME]`` table for the model's family
        applied (the recipe itself when it has none, or the family cannot be told without
        loading: a hub id not yet downloaded, whose runner applies it then)."""
        if not recipe.family or not model:
            return recipe
        from photobatch.plugins.diffusion.sources import ModelError

        try:
            info = self._model_info(model, recipe.model_config)
        except (ModelError, ValueError, OSError):  # the model's own check says why
            return recipe
        return recipe.for_family(info.table) if info else recipe

    def model_label(self, model: str, config: str | None = None) -> str | None:
        """What ``model`` is, in words ("SDXL", "Z-Image"), when it can be told without loading
        it (a local model or a cached hub id); None otherwise."""
        from photobatch.plugins.diffusion.sources import ModelError

        try:
            info = self._model_info(model, config)
        except (ModelError, ValueError, OSError):
            return None
        return info.label if info else None

    def _model_info(self, model: str, config: str | None):
        """What ``model`` is (``_local_info``; a hub id: its cached copy), read once per App:
        every recipe's checks and every photo's ``for_model`` ask about the same few models."""
        key = (model, config)
        if key not in self._infos:
            self._infos[key] = _local_info(model, config)
        return self._infos[key]

    def model_for(self, recipe: Recipe) -> str:
        """The model a recipe runs on: the recipe's own, else --model / PHOTOBATCH_MODEL."""
        model = recipe.model or self.default_model
        if not model:
            raise UsageError(
                f"recipe {recipe.name!r} names no model: pass --model PATH (a diffusers folder or "
                "a hub id), set PHOTOBATCH_MODEL, or set [defaults] model in the config"
            )
        return model

    def notify(self, event: str, **kwargs) -> None:
        """Send an event to plugin listeners; a failing listener is logged and recorded, never raised."""
        failures = notify(self.pm, event, **kwargs)
        if failures:
            record_plugin_failures(lambda: self.catalog, failures, run_id=kwargs.get("run_id"))

    @property
    def plugin_errors(self) -> list:
        """Plugin failures since start (loading, contribution hooks, events), oldest first."""
        return list(getattr(self.pm, "failures", ()))

    def close_thread_catalog(self) -> None:
        """Close this thread's catalog connection, if it has one (a thread that ends: its
        connection would stay open until the App closes)."""
        cat = getattr(self._local, "catalog", None)
        if cat is None:
            return
        self._local.catalog = None
        with self._opened_lock:
            if cat in self._opened:
                self._opened.remove(cat)
        cat.close()

    def close(self) -> None:
        """Close every catalog connection this App opened."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for cat in opened:
            try:
                cat.close()
            except Exception:  # a connection of a thread that is still busy: closed at exit
                pass
        self._local = threading.local()


__all__ = ["App", "UsageError", "RecipeError"]


def _local_info(model: str, config: str | None):
    """What a local model folder or checkpoint, or a hub id's cached copy, is (its ModelInfo, no
    weights read); None for a hub id not cached."""
    from photobatch.plugins.diffusion.families import family_of_folder, family_of_single_file
    from photobatch.plugins.diffusion.sources import cached_snapshot, resolve_model

    ref = resolve_model(model, config=config)
    if ref.kind == "folder":
        return family_of_folder(ref.location)
    if ref.kind == "single-file":
        info = family_of_single_file(ref.location)
        if ref.config and Path(ref.config, "model_index.json").is_file():
            # A FLUX.1 Kontext or Fill transformer is a FLUX.1 one to its header, a distilled
            # FLUX.2 [klein] one a FLUX.2 one; its model_config says which it is.
            base = family_of_folder(ref.config)
            info = dataclasses.replace(info, variant=base.variant, distilled=base.distilled)
        return info
    snapshot = cached_snapshot(ref.location)
    if snapshot and Path(snapshot, "model_index.json").is_file():
        return family_of_folder(snapshot)
    return None
