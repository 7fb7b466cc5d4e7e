"""Process one photo with one recipe: identify, read, run, restore size, write, record.

Each stage is timed and named, so a failure reads "error while reading X: reason" and the
catalog holds how long every stage took.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from photobatch.catalog.queue import RunQueue
from photobatch.catalog.store import UNREADABLE
from photobatch.daemon.app import App, UsageError
from photobatch.daemon.faces import run_on_faces
from photobatch.daemon.model_view import composite_in_source_space, model_view, result_in_source_space
from photobatch.catalog.hashing import file_sha256
from photobatch.daemon.naming import OutputExists, Take
from photobatch.daemon.output_writer import OutputWriter, fit_within, to_8bit
from photobatch.daemon.sidecar_masks import SidecarMask, mask_identity, sidecar_mask
from photobatch.daemon.steps import apply_post_steps, select_post_steps
from photobatch.plugins import metadata
from photobatch.plugins.colour import profile_for
from photobatch.plugins.diffusion.fullres import restore_full_resolution
from photobatch.plugins.diffusion.loading import ModelError, resolve_model
from photobatch.plugins.images import NothingToDo, ReadError
from photobatch.plugins.output_options import output_bit_depth, writer_name
from photobatch.plugins.sharpening import sharpen_output
from photobatch.plugins.transparency import fit_alpha, straight_output
from photobatch.plugins.metadata.rights import with_rights
from photobatch.plugins.watermark import draw_watermark, recipe_mark
from photobatch.recipes.schema import Recipe

log = logging.getLogger(__name__)

class StageError(Exception):
    """A stage failed for a reason the user can read; ``stage`` names what was being done.
    ``lasting``: trying the same file again would fail the same way (see ReadError);
    ``disk_full``: so would every other photo until space is freed."""

    def __init__(self, stage: str, reason: str, *, lasting: bool = False, disk_full: bool = False):
        super().__init__(f"error while {stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.lasting = lasting
        self.disk_full = disk_full


@dataclass
class Outcome:
    """What happened to one (file, recipe): done, skipped or failed, and why."""

    path: Path
    recipe: str
    status: str  # "done" | "skipped" | "failed"
    output: Path | None = None
    error: str | None = None
    run_id: int | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    lasting: bool = False  # a failure these same bytes would meet again: not retried
    retrying: bool = False  # a failure the daemon tries again later: not the run's last word
    disk_full: bool = False  # the output's disk is full: the photos after it would fail too


def size_text(size) -> str | None:
    """(624, 416) as "624x416"; None when a runner did not say (a plugin's may not)."""
    try:
        width, height = size
        return f"{int(width)}x{int(height)}"
    except (TypeError, ValueError):
        return None


def _mask_repainted(done: dict, photo: Path, recipe: Recipe) -> bool:
    """True when ``done`` read a painted mask and the one beside ``photo`` now is another (a
    mask taken away leaves the output as it is: there is nothing to redo it with)."""
    if recipe.mask != "sidecar" or not done.get("mask_sha256"):
        return False
    now = mask_identity(photo)
    return now is not None and now != done["mask_sha256"]


def derive_seed(file_sha: str, fingerprint: str) -> int:
    """A seed fixed by (file content, recipe version), so a re-run reproduces the output."""
    digest = hashlib.sha256(f"{file_sha}:{fingerprint}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it: a metadata write) is "no space left on device"."""
    return any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
               for e in (exc, exc.__cause__))


class Timer:
    """Collects seconds per stage and turns exceptions into StageErrors naming the stage."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, verb: str):
        """Time the block as stage ``name``; a user-fixable error in it becomes a StageError
        saying it could not ``verb``."""
        start = time.perf_counter()
        try:
            yield
        except StageError:
            raise
        except ReadError as exc:
            raise StageError(verb, str(exc), lasting=exc.lasting) from exc
        except (ModelError, ValueError, metadata.MetadataError, OSError) as exc:
            if _disk_full(exc):
                # Named plainly (the file being written then is a temporary one).
                raise StageError(verb, "the disk is full (no space left on the device)",
                                 disk_full=True) from exc
            if isinstance(exc, OSError):
                raise StageError(verb, exc.strerror or str(exc)) from exc
            raise StageError(verb, str(exc)) from exc
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Job:
    """One (file, recipe) travelling through the stages; filled in as it goes."""

    path: Path
    recipe: Recipe
    run_id: int | None = None
    out_dir: Path | None = None
    timer: "Timer" = field(default_factory=lambda: Timer())
    started: float = field(default_factory=time.perf_counter)
    sha: str = ""
    file_id: int | None = None
    model: str = ""
    model_id: str = ""
    seed: int = 0
    seed_source: str = ""  # "chosen", "take", "recipe" or "derived"
    runner: object = None
    decoded: object = None
    view: object = None  # the picture the model is given: the decoded one, in sRGB
    mask: "SidecarMask | None" = None  # where the model may change it (mask = "sidecar")
    result: object = None
    summary: dict = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        """Seconds since the job was created."""
        return time.perf_counter() - self.started

    @property
    def batch_key(self) -> tuple:
        """Jobs with equal keys may share one ``generate_batch`` call (same recipe and model)."""
        return (self.recipe.name, self.recipe.fingerprint, self.model)


def _read(reader, path: Path, output_space: str):
    """Decode ``path``; a reader that renders (RAW) renders straight into the output's space."""
    if output_space != "source" and output_space in getattr(reader, "color_spaces", ()):
        return reader.read(path, color_space=output_space)
    return reader.read(path)


def batch_size(recipe) -> int:
    """How many photos of ``recipe`` may share one pipeline call: its ``batch``, except for
    per-face and tiled runs, which make several calls of their own per photo."""
    if recipe.mask != "none" or recipe.full_resolution == "tiled":
        return 1
    return max(1, getattr(recipe, "batch", 1))


class Session:
    """Runs recipes on files for one App; used by ``photobatch run`` and the demo."""

    def __init__(self, app: App, out_dir: Path, force: bool = False):
        self.app = app
        self.out_dir = Path(out_dir)
        self.force = force
        self.writer = OutputWriter(app)

    def process(self, path: Path, recipe: Recipe, out_dir: Path | None = None,
                model: str | None = None, seed: int | Take | str | None = None) -> Outcome:
        """Process ``path`` with ``recipe`` (every stage in this thread); never raises for a bad
        file, records everything. ``out_dir``, ``model`` and ``seed`` as for ``prepare``."""
        job = self.prepare(path, recipe, out_dir=out_dir, model=model, seed=seed)
        if isinstance(job, Outcome):
            return job
        job = self.generate(job)
        if isinstance(job, Outcome):
            return job
        return self.finish(job)

    def prepare(self, path: Path, recipe: Recipe, run_id: int | None = None,
                out_dir: Path | None = None, model: str | None = None,
                seed: int | Take | str | None = None) -> "Job | Outcome":
        """CPU stage: identify and register the file, skip finished work, start the run, decode.

        With ``run_id`` (a run claimed from the queue) that run is used instead of a new one;
        ``out_dir`` overrides the session's output folder for this job (each watch folder has its
        own) and ``model`` the recipe's model (a watch folder's, or the one the run was queued with).
        ``seed``: a seed chosen for this photo (``rerun --seed N``; a naming.Take for one of
        several takes), or "recipe" to go back to the recipe's own; by default a seed chosen
        earlier for this photo and recipe is kept.
        """
        # Absolute, as the catalog records it: `--out enhanced` means here, not wherever a
        # later `catalog verify` or `export` happens to run.
        job = Job(path=path, recipe=recipe, run_id=run_id,
                  out_dir=Path(out_dir or self.out_dir).expanduser().resolve())
        catalog = self.app.catalog
        try:
            with job.timer.stage("identify", f"reading {path.name}"):
                stat = path.stat()
                with open(path, "rb") as fh:
                    head = fh.read(64)
                # The daemon's intake (or another recipe's run) identified this very file already.
                known = catalog.unchanged_file(path, stat.st_size, stat.st_mtime)
                if known is None or not known["exif"] or known["sha256"].startswith(UNREADABLE):
                    job.sha = file_sha256(path)
                    job.summary = metadata.read_summary(path)
                else:
                    job.sha, job.summary = known["sha256"], json.loads(known["exif"])
            reader = next((r for r in self.app.readers if r.accept(head, path)), None)
            if known is None or known["sha256"] != job.sha:
                job.file_id = catalog.register_file(
                    sha256=job.sha, path=path, size=stat.st_size, mtime=stat.st_mtime,
                    metadata=job.summary)
                self.app.notify("photobatch_file_discovered", path=path, sha256=job.sha)
            else:
                job.file_id = known["id"]
            job.model = model or self.app.model_for(recipe)
            try:
                job.model_id = resolve_model(job.model).model_id
            except ModelError as exc:  # moved or deleted since the run was queued, a typo
                raise StageError(f"running {recipe.name} on {path.name}", str(exc)) from exc
            # What runs on this model: the recipe with its model family's table applied.
            recipe = job.recipe = self.app.for_model(recipe, job.model)
            # Done into another folder (another watch folder, another --out) is not done here.
            done = catalog.finished_run(job.file_id, recipe.fingerprint, job.model_id, recipe.name,
                                        output_dir=str(job.out_dir))
            # A run queued by ``photobatch rerun`` asks to be redone, like --force does.
            forced = self.force or (run_id is not None and RunQueue(catalog).is_forced(run_id))
            if done and not forced and done["output_path"] and Path(done["output_path"]).exists() \
                    and not _mask_repainted(done, path, recipe):
                if run_id is not None:
                    catalog.skip_run(run_id, reason=f"already done by run {done['id']}")
                return Outcome(path, recipe.name, "skipped", Path(done["output_path"]),
                               run_id=done["id"], error="already done (use --force to redo)")
            job.seed, job.seed_source = self._seed_for(job, recipe, run_id, seed)
            try:
                job.runner = self.app.runners.get(recipe.runner)
            except KeyError as exc:
                raise StageError(f"running {recipe.name}", str(exc.args[0])) from None
            params = dict(file_id=job.file_id, recipe=recipe.name, fingerprint=recipe.fingerprint,
                          params=recipe.params(), seed=job.seed, model_id=job.model_id,
                          runner=job.runner.name, seed_source=job.seed_source)
            if run_id is None:
                job.run_id = catalog.start_run(**params, output_dir=str(job.out_dir))
            else:
                catalog.update_claimed_run(run_id, **params)
            self.app.notify("photobatch_run_started", path=path, recipe=recipe.name, run_id=job.run_id)
            if reader is None:
                raise StageError(f"reading {path.name}", "the file is empty (0 bytes)"
                                 if stat.st_size == 0 else "not a supported image format",
                                 lasting=True)
            with job.timer.stage("read", f"reading {path.name}"):
                job.decoded = _read(reader, path, recipe.output.color_space)
                job.view = model_view(job.decoded.image, job.decoded.icc_profile)
                width, height = job.decoded.size
                catalog.register_file(sha256=job.sha, path=path, size=stat.st_size,
                                      mtime=stat.st_mtime, fmt=job.decoded.format,
                                      width=width, height=height)
                if recipe.mask == "sidecar":
                    # Read with the photo, on the CPU side: the model's stage only runs the model.
                    job.mask = sidecar_mask(path, job.view.size)
            return job
        except Exception as exc:
            if job.run_id is None and isinstance(exc, StageError):
                self._start_failed_run(job)
            return self._fail(job, exc)

    def _seed_for(self, job: "Job", recipe: Recipe, run_id: int | None,
                  requested: int | str | None) -> tuple[int, str]:
        """(seed, where it came from): asked for now (``rerun --seed``: the call's, or the queued
        run's), else chosen earlier for this photo and recipe, else the recipe's fixed seed,
        else one derived from the photo and the recipe version."""
        catalog = self.app.catalog
        if requested is None and run_id is not None:
            seed, source = catalog.requested_seed(run_id)
            requested = {"recipe": "recipe", "take": Take(seed)}.get(source, seed)
        if isinstance(requested, Take):
            return requested.seed, "take"
        if isinstance(requested, int):
            return requested, "chosen"
        if requested != "recipe":
            chosen = catalog.chosen_seed(job.file_id, recipe.name, before_run=run_id)
            if chosen is not None:
                return chosen, "chosen"
        if recipe.seed is not None:
            return recipe.seed, "recipe"
        return derive_seed(job.sha, recipe.fingerprint), "derived"

    def _start_failed_run(self, job: "Job") -> None:
        """Give a job that failed before its run started a run to fail, so the catalog has the
        reason: a file that cannot be opened (deleted while queued, no permission), a model
        or runner that cannot be found."""
        catalog = self.app.catalog
        file_id = job.file_id
        if file_id is None:
            known = catalog.find_file(str(job.path))
            # Its content is unknown, so it is registered under a stand-in hash of its path.
            file_id = known["id"] if known else catalog.register_file(
                sha256=UNREADABLE + hashlib.sha256(os.fsencode(job.path)).hexdigest(),
                path=job.path, size=None, mtime=None)
        job.run_id = catalog.start_run(
            file_id=file_id, recipe=job.recipe.name, fingerprint=job.recipe.fingerprint,
            params=job.recipe.params(), seed=None, runner=job.recipe.runner,
            model_id=job.model_id or job.model or job.recipe.model or self.app.default_model or "",
            output_dir=str(job.out_dir))

    def generate(self, job: "Job") -> "Job | Outcome":
        """GPU stage: run the recipe's runner on the decoded picture."""
        try:
            with job.timer.stage("run", f"running {job.recipe.name} on {job.path.name}"):
                if job.recipe.mask == "faces":
                    job.result = run_on_faces(self.app, job.runner, job.view, job.recipe,
                                              job.seed, job.model)
                elif job.mask is not None:
                    job.result = job.runner.run(job.view, job.recipe, job.seed, job.model,
                                                mask=job.mask.image)
                else:
                    job.result = job.runner.run(job.view, job.recipe, job.seed, job.model)
            return job
        except Exception as exc:
            return self._fail(job, exc)

    def _keep_16_bits(self, job: "Job"):
        """The source's 16-bit pixels when the output keeps them (a 16-bit output, no colour
        conversion, no post steps, which work on 8-bit pictures), else None."""
        output = job.recipe.output
        if job.decoded.pixels16 is None or job.recipe.post or not (
                output.color_space == "source"
                or profile_for(output.color_space) == job.decoded.icc_profile):
            return None
        writer = self.app.writers.get(writer_name(output.format))
        try:
            depth = output_bit_depth(output, writer, job.decoded.bits)
        except ValueError:
            return None
        return job.decoded.pixels16 if depth == 16 else None

    def generate_batch(self, jobs: list["Job"]) -> list["Job | Outcome"]:
        """GPU stage for several jobs of one recipe and model: one ``run_batch`` call when the
        runner has it (GPUs), each job's run time its share. If the batch fails, each job is
        run on its own, so one bad photo fails alone."""
        runner = jobs[0].runner
        if len(jobs) == 1 or not hasattr(runner, "run_batch"):
            return [self.generate(job) for job in jobs]
        started = time.perf_counter()
        try:
            results = runner.run_batch([job.view for job in jobs], jobs[0].recipe,
                                       [job.seed for job in jobs], jobs[0].model)
        except Exception:
            log.info("a batch of %d failed; running its photos one by one", len(jobs), exc_info=True)
            return [self.generate(job) for job in jobs]
        share = (time.perf_counter() - started) / len(jobs)
        for job, result in zip(jobs, results):
            job.result = result
            job.timer.timings["run"] = job.timer.timings.get("run", 0.0) + share
        return list(jobs)

    def finish(self, job: "Job") -> Outcome:
        """CPU stage: bring the result to full size, write it with metadata, record the run."""
        try:
            with job.timer.stage("restore", "bringing the result to full resolution"):
                result, icc = job.result, job.decoded.icc_profile
                converted = job.view is not job.decoded.image  # the model saw an sRGB view
                if getattr(result, "finished", False):
                    full = result.image  # the runner composited at full size (faces)
                    if converted:
                        full = composite_in_source_space(full, job.view, job.decoded.image, icc)
                else:
                    if converted:
                        result = result_in_source_space(result, icc)
                    full = restore_full_resolution(job.decoded.image, result,
                                                   job.recipe.full_resolution,
                                                   color_match=job.recipe.color_match,
                                                   source16=self._keep_16_bits(job))
            # Hook point until recipes name their steps: plugins select them (photobatch_post_steps).
            post = select_post_steps(self.app, job.recipe)
            if post and not isinstance(full, Image.Image):
                full = to_8bit(full)  # plugin-chosen steps work on 8-bit pictures
            if post:
                with job.timer.stage("post", f"applying steps to the result of {job.path.name}"):
                    full = apply_post_steps(post, full, job.decoded.image, self.app.pm)
            alpha = job.decoded.alpha
            if alpha is not None and not self.writer.keeps_alpha(job.recipe):
                alpha = None  # a JPEG: the picture stays flattened onto white
            if alpha is not None:
                full = straight_output(full, job.decoded)
            if job.recipe.output.max_side:
                full = fit_within(full, job.recipe.output.max_side)
            # Last, after resizing, as exporters do; the watermark is not sharpened.
            full = sharpen_output(full, job.recipe.output.sharpen, job.recipe.output.sharpen_amount,
                                  job.recipe.output.ppi)
            output, mark = job.recipe.output, None
            if output.watermark or output.watermark_image:
                try:
                    mark = recipe_mark(output, with_rights(job.summary, self.app.rights_for(job.path)))
                except ValueError as exc:
                    # The photo's metadata will not change by trying again; a logo file may.
                    raise StageError(f"watermarking the output of {job.path.name}", str(exc),
                                     lasting=bool(output.watermark)) from None
                if alpha is None:
                    full = draw_watermark(full, mark, job.decoded.icc_profile)
                else:  # a cut-out: the mark shows where the picture is transparent too
                    size = full.size if isinstance(full, Image.Image) else full.shape[1::-1]
                    full, alpha = draw_watermark(full, mark, job.decoded.icc_profile,
                                                 alpha=fit_alpha(alpha, size))
            ran_as = None
            family = getattr(job.result, "family", None)
            if job.recipe.family and family:
                # A model whose family showed only when it loaded (a hub id downloaded just
                # now): the runner applied that family's table, so it is what is recorded.
                job.recipe = job.recipe.for_family(family)
                ran_as = (job.recipe.fingerprint, job.recipe.params())
            drawn = mark.logo_sha256 if mark is not None else None
            if drawn and output.watermark_image_sha256 and drawn != output.watermark_image_sha256:
                # The logo file changed since the recipe loaded (the daemon runs on): the run
                # records the logo it drew, so its output is judged by that one.
                job.recipe = dataclasses.replace(job.recipe, output=dataclasses.replace(
                    job.recipe.output, watermark_image_sha256=drawn))
                ran_as = (job.recipe.fingerprint, job.recipe.params())
            # What made it, beyond the recipe and seed: for the catalog and the XMP record alike.
            made = {key: getattr(job.result, key, None)
                    for key in ("model_hash", "adapters_hash", "precision")}
            made["working_size"] = size_text(getattr(job.result, "working_size", None))
            made["prompt"] = getattr(job.result, "prompt", None)
            made["mask_sha256"] = job.mask.sha256 if job.mask is not None else None
            made["model_config"] = getattr(job.result, "model_config", None)
            with job.timer.stage("write", f"writing the output of {job.path.name}"):
                output = self.writer.write(job.path, job.recipe, full, job.decoded.icc_profile, job.sha,
                                     job.seed, job.model_id, job.run_id, job.out_dir,
                                     source_bits=job.decoded.bits, summary=job.summary,
                                     file_id=job.file_id, take=job.seed_source == "take",
                                     alpha=alpha,
                                     provenance={
                                         "ModelHash": made["model_hash"],
                                         "AdaptersHash": made["adapters_hash"],
                                         "Precision": made["precision"],
                                         "WorkingSize": made["working_size"],
                                         "Prompt": made["prompt"],
                                         "MaskSHA256": made["mask_sha256"],
                                         "ModelConfig": made["model_config"]})
                output_sha = file_sha256(output)
            self.app.catalog.finish_run(job.run_id, output_path=output, output_sha256=output_sha,
                                        timings=job.timer.timings, device=job.result.device,
                                        ran_as=ran_as, **made)
            self.app.notify("photobatch_output_written", source=job.path, output=output,
                            recipe=job.recipe.name, run_id=job.run_id)
            return Outcome(job.path, job.recipe.name, "done", output, run_id=job.run_id,
                           seconds=job.elapsed, timings=job.timer.timings)
        except Exception as exc:
            return self._fail(job, exc)

    def _fail(self, job: "Job", exc: Exception) -> Outcome:
        cause = exc.__cause__ if isinstance(exc, StageError) else exc
        if isinstance(cause, (NothingToDo, OutputExists)):
            # Not an error: nothing for this recipe to do here (no face; name taken, skip).
            reason = str(cause)
            if job.run_id is not None:
                self.app.catalog.skip_run(job.run_id, reason=reason)
            return Outcome(job.path, job.recipe.name, "skipped", error=reason, run_id=job.run_id,
                           seconds=job.elapsed, timings=job.timer.timings)
        if isinstance(exc, StageError):
            reason = str(exc)
        elif isinstance(exc, UsageError):
            raise exc
        else:
            # Unexpected: keep the traceback in the log, a one-line reason in the catalog.
            log.exception("unexpected error processing %s with %s", job.path, job.recipe.name)
            reason = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
        if job.run_id is not None:
            self.app.catalog.fail_run(job.run_id, error=reason, timings=job.timer.timings)
        self.app.notify("photobatch_run_failed", path=job.path, recipe=job.recipe.name,
                        error=reason, run_id=job.run_id)
        return Outcome(job.path, job.recipe.name, "failed", error=reason, run_id=job.run_id,
                       seconds=job.elapsed, timings=job.timer.timings,
                       lasting=getattr(exc, "lasting", False),
                       disk_full=getattr(exc, "disk_full", False))
