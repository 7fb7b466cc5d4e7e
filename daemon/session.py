"""Process one photo with one recipe: identify, read, run, restore size, write, record.

Each stage is timed and named, so a failure reads "error while reading X: reason" and the
catalog holds how long every stage took.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from photobatch.daemon.app import App
from photobatch.plugins import metadata
from photobatch.plugins.diffusion.loading import ModelError, resolve_model
from photobatch.plugins.images import ReadError
from photobatch.recipes.schema import Recipe

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20


class StageError(Exception):
    """A stage failed for a reason the user can read; ``stage`` names what was being done."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"error while {stage}: {reason}")
        self.stage = stage
        self.reason = reason


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


def file_sha256(path: Path) -> str:
    """Stream the file through sha256 (photos are tens of MB; never read them whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def derive_seed(file_sha: str, fingerprint: str) -> int:
    """A seed fixed by (file content, recipe version), so a re-run reproduces the output."""
    digest = hashlib.sha256(f"{file_sha}:{fingerprint}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def output_name(recipe: Recipe, source: Path, extension: str) -> str:
    """Render the recipe's naming template for ``source``."""
    return recipe.output.name.format(stem=source.stem, recipe=recipe.name, ext=source.suffix[1:]) + extension


class Timer:
    """Collects seconds per stage and turns exceptions into StageErrors naming the stage."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, verb: str):
        start = time.perf_counter()
        try:
            yield
        except StageError:
            raise
        except (ReadError, ModelError, ValueError, metadata.MetadataError) as exc:
            raise StageError(verb, str(exc)) from exc
        except OSError as exc:
            raise StageError(verb, exc.strerror or str(exc)) from exc
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


class Session:
    """Runs recipes on files for one App; used by ``photobatch run`` and the demo."""

    def __init__(self, app: App, out_dir: Path, force: bool = False):
        self.app = app
        self.out_dir = Path(out_dir)
        self.force = force

    def process(self, path: Path, recipe: Recipe) -> Outcome:
        """Process ``path`` with ``recipe``; never raises for a bad file, records everything."""
        started = time.perf_counter()
        timer = Timer()
        catalog = self.app.catalog
        run_id = None
        try:
            with timer.stage("identify", f"reading {path.name}"):
                stat = path.stat()
                sha = file_sha256(path)
                with open(path, "rb") as fh:
                    head = fh.read(64)
                summary = metadata.read_summary(path)
            reader = next((r for r in self.app.readers if r.accept(head, path)), None)
            file_id = catalog.register_file(
                sha256=sha, path=path, size=stat.st_size, mtime=stat.st_mtime,
                metadata=summary,
            )
            self.app.notify("photobatch_file_discovered", path=path, sha256=sha)
            model = self.app.model_for(recipe)
            model_id = resolve_model(model).model_id
            done = catalog.finished_run(file_id, recipe.fingerprint, model_id)
            if done and not self.force and done["output_path"] and Path(done["output_path"]).exists():
                return Outcome(path, recipe.name, "skipped", Path(done["output_path"]),
                               run_id=done["id"], error="already done (use --force to redo)")
            seed = recipe.seed if recipe.seed is not None else derive_seed(sha, recipe.fingerprint)
            runner = self.app.runners.get(recipe.runner)
            run_id = catalog.start_run(
                file_id=file_id, recipe=recipe.name, fingerprint=recipe.fingerprint,
                params=recipe.params(), seed=seed, model_id=model_id, runner=runner.name,
            )
            self.app.notify("photobatch_run_started", path=path, recipe=recipe.name)
            if reader is None:
                raise StageError(f"reading {path.name}", "not a supported image format")
            with timer.stage("read", f"reading {path.name}"):
                decoded = reader.read(path)
                catalog.register_file(sha256=sha, path=path, size=stat.st_size, mtime=stat.st_mtime,
                                      fmt=decoded.format, width=decoded.size[0], height=decoded.size[1])
            with timer.stage("run", f"running {recipe.name} on {path.name}"):
                result = runner.run(decoded.image, recipe, seed, model)
            with timer.stage("restore", "resizing the result to full resolution"):
                full = result.image.resize(decoded.size, Image.Resampling.LANCZOS)
            with timer.stage("write", f"writing the output of {path.name}"):
                output = self._write(path, recipe, full, decoded.icc_profile, sha, seed, model_id, run_id)
                output_sha = file_sha256(output)
            catalog.finish_run(run_id, output_path=output, output_sha256=output_sha,
                               timings=timer.timings, model_hash=result.model_hash,
                               device=result.device)
            self.app.notify("photobatch_output_written", source=path, output=output,
                            recipe=recipe.name, run_id=run_id)
            return Outcome(path, recipe.name, "done", output, run_id=run_id,
                           seconds=time.perf_counter() - started, timings=timer.timings)
        except StageError as exc:
            return self._failed(path, recipe, run_id, str(exc), timer, started)
        except Exception as exc:
            # Unexpected: keep the traceback in the log, a one-line reason in the catalog.
            log.exception("unexpected error processing %s with %s", path, recipe.name)
            reason = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
            return self._failed(path, recipe, run_id, reason, timer, started)

    def _failed(self, path, recipe, run_id, reason, timer, started) -> Outcome:
        if run_id is not None:
            self.app.catalog.fail_run(run_id, error=reason, timings=timer.timings)
        self.app.notify("photobatch_run_failed", path=path, recipe=recipe.name, error=reason)
        return Outcome(path, recipe.name, "failed", error=reason, run_id=run_id,
                       seconds=time.perf_counter() - started, timings=timer.timings)

    def _write(self, source: Path, recipe: Recipe, image: Image.Image, icc: bytes | None,
               sha: str, seed: int, model_id: str, run_id: int) -> Path:
        writer = self.app.writers.get(recipe.output.format)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        final = self._claim_output_path(output_name(recipe, source, writer.extension), sha, recipe)
        # Dot-prefixed temp name in the same folder: invisible to watchers, and the rename is atomic.
        temp = final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")
        try:
            writer.write(image, temp, quality=recipe.output.quality, icc_profile=icc)
            metadata.write_output_metadata(
                source, temp, width=image.width, height=image.height,
                policy=recipe.output.metadata,
                record={
                    "Recipe": recipe.name,
                    "RecipeFingerprint": recipe.fingerprint,
                    "Params": _json(recipe.params()),
                    "Seed": str(seed),
                    "Model": model_id,
                    "SourceFile": source.name,
                    "SourceSHA256": sha,
                    "RunID": str(run_id),
                },
            )
            with open(temp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        return final

    def _claim_output_path(self, name: str, sha: str, recipe: Recipe) -> Path:
        """The output path: reuse our own earlier output of this file, else avoid collisions."""
        candidate = self.out_dir / name
        stem, suffix = candidate.stem, candidate.suffix
        n = 1
        while candidate.exists() and not self._is_our_output(candidate, sha, recipe):
            candidate = self.out_dir / f"{stem}-{n}{suffix}"
            n += 1
        return candidate

    def _is_our_output(self, path: Path, sha: str, recipe: Recipe) -> bool:
        rows = self.app.catalog.db.query(
            "SELECT 1 FROM runs r JOIN files f ON f.id = r.file_id "
            "WHERE r.output_path = ? AND f.sha256 = ? AND r.recipe = ? LIMIT 1",
            [str(path), sha, recipe.name],
        )
        return any(True for _ in rows)


def _json(data) -> str:
    import json

    return json.dumps(data, sort_keys=True, separators=(",", ":"))
