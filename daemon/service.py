"""``photobatch watch`` as a service: lock, signals, intake, catch-up scans, the main loop.

Signal handlers only record what was asked; the main loop acts on it (stop intake, drain or
requeue in-flight work, exit 0; reload config and recipes on SIGHUP).
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import queue
import re
import signal
import socket
import time
from pathlib import Path

from photobatch.catalog.queue import WAITING_FOR_SPACE, DaemonState, RunQueue, now_text
from photobatch.catalog.workers import pid_alive, worker_id
from photobatch.daemon.app import App, UsageError
from photobatch.daemon.config import Config, ConfigError, WatchFolder, load_config
from photobatch.daemon.pairs import (
    folder_names,
    is_raw_name,
    may_be_left_out,
    pair_partner,
    why_left_out,
)
from photobatch.catalog.culling import current_culling, sidecars_for
from photobatch.daemon.paths import (
    MASK_SUFFIX,
    is_candidate,
    is_mask,
    is_xmp_sidecar,
    mask_path_for,
    mirrored_output,
)
from photobatch.daemon.pipeline import Pipeline
from photobatch.daemon.session import Outcome, Session, file_sha256
from photobatch.daemon.tally import Tally
from photobatch.daemon.watcher import (
    EnqueueingHandler,
    ReadinessTracker,
    folder_ready,
    is_ignored,
    scan_folder,
    start_observer,
)
from photobatch.plugins import metadata
from photobatch.plugins.diffusion.loading import ModelError, resolve_model

log = logging.getLogger("photobatch.watch")

TICK_SECONDS = 0.2
HEARTBEAT_SECONDS = 2.0
# How often folders that may come and go (cards, shares) are looked for.
FOLDER_CHECK_SECONDS = 5.0
# An inbox subfolder archiving emptied is removed once nothing changed in it for this long (a
# copy still going on there adds files more often).
EMPTIED_FOLDER_IDLE_SECONDS = 30.0
# How often the daemon looks whether the catalog's backup is due.
BACKUP_CHECK_SECONDS = 3600.0
# Nothing to do for this long means a shoot is finished (a card copied slower than the model
# runs is not); then the daemon says what it did.
CAUGHT_UP_SECONDS = 30.0


class CatalogLock:
    """An exclusive lock next to the catalog: one daemon per catalog (released even on kill -9)."""

    def __init__(self, catalog_path: Path):
        self.path = Path(str(catalog_path) + ".lock")
        self._fh = None

    def acquire(self) -> None:
        """Take the lock or raise UsageError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise UsageError(f"another photobatch watch (pid {holder}) is already using the catalog "
                             f"{self.path.with_suffix('')}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Release the lock."""
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def held_by_other(self) -> bool:
        """True when some other process holds the lock (a daemon is up)."""
        if not self.path.exists():
            return False
        with open(self.path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False


class WatchService:
    """Runs the watch folders of a Config until stopped (or, with ``once``, until idle)."""

    def __init__(self, config_path: Path | None, catalog_path: Path | None = None, *,
                 once: bool = False, config: Config | None = None, extra_recipe_dirs=(),
                 plugins_dir: Path | None = None, plugin_manager_factory=None):
        # Absolute: a reload (SIGHUP) must find the same file whatever the working directory.
        self.config_path = Path(config_path).resolve() if config_path else None
        self.config = config or load_config(self.config_path)
        self.catalog_path = catalog_path
        self.once = once
        self.extra_recipe_dirs = tuple(extra_recipe_dirs)
        self.plugin_manager_factory = plugin_manager_factory
        self.plugins_dir = plugins_dir
        self.events: "queue.Queue[tuple[str, Path]]" = queue.Queue()
        self.tracker = ReadinessTracker()
        self.stop_signals = 0
        self.reload_requested = False
        self.failures = 0
        self._archive_warned: set[Path] = set()  # photos whose archive name is taken
        self._emptied: dict[Path, Path] = {}  # inbox subfolders archiving emptied: their inbox
        self.tally = Tally()  # outcomes since the daemon last ran out of work
        self.observers: dict[Path, object] = {}  # by watched folder: those that are there
        self.started_at: str | None = None  # when run() began, as the catalog writes times

    # setup -----------------------------------------------------------------------------------

    def build_app(self, config: Config) -> App:
        """The App ``config`` asks for (plugins, recipes, catalog), every folder's recipes and
        models checked as at start; a problem raises ConfigError naming the folder and recipe."""
        pm = self.plugin_manager_factory(config) if self.plugin_manager_factory else None
        app = App(catalog_path=self.catalog_path, recipe_dirs=config.recipe_dirs + self.extra_recipe_dirs,
                  model=config.model, plugin_manager=pm,
                  plugins_dir=self.plugins_dir or config.plugins_dir,
                  disabled_plugins=config.disabled_plugins, **config.app_settings())
        for i, folder in enumerate(config.watch):
            for name in folder.recipes:
                if name not in app.recipes:
                    known = ", ".join(sorted(app.recipes))
                    raise ConfigError(f"config {config.source}: watch[{i}].recipes names {name!r}, "
                                      f"which is not a recipe (known: {known})")
                recipe = app.recipes[name]
                model = recipe.model or folder.model or config.model
                if not model:
                    raise ConfigError(f"config {config.source}: watch[{i}] runs {name!r} with no model: "
                                      "set [defaults] model, or this folder's or the recipe's model")
                try:
                    app.check_runnable(recipe, model)
                except UsageError as exc:
                    raise ConfigError(f"config {config.source}: watch[{i}] runs {name!r}: {exc}") from None
        from photobatch.plugins.builtin.auto_export import check_exports

        problems = check_exports(app)
        if problems:
            raise ConfigError(f"config {config.source}: {problems[0]}")
        return app

    def _install_signals(self) -> None:
        def on_stop(signum, frame):
            self.stop_signals += 1
            if self.stop_signals > 1:
                # Second signal: leave now. Claimed runs are requeued at the next start.
                os._exit(128 + signum)

        def on_hup(signum, frame):
            self.reload_requested = True

        self._previous_handlers = {
            signum: signal.signal(signum, handler)
            for signum, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop),
                                    (signal.SIGHUP, on_hup))
        }

    def _restore_signals(self) -> None:
        for signum, handler in getattr(self, "_previous_handlers", {}).items():
            signal.signal(signum, handler)

    def _start_observers(self) -> None:
        for folder in self.config.watch:
            if not self._watch(folder):
                log.warning("%s is not there (a card or a share not mounted?): it is watched "
                            "once it appears", folder.path)

    def _watch(self, folder: WatchFolder) -> bool:
        """Start watching ``folder`` if it is there; True when it is watched."""
        if not folder_ready(folder):
            return False
        observer, mode = start_observer(folder, EnqueueingHandler(self.events))
        self.observers[folder.path] = observer
        log.info("watching %s (%s events) -> %s with %s", folder.path, mode, folder.output,
                 ", ".join(folder.recipes))
        return True

    def _check_folders(self) -> None:
        """Follow folders that come and go (a card, a share mounted and unmounted): one that
        went is let go, one that came is watched and scanned."""
        came = False
        for folder in self.config.watch:
            observer = self.observers.get(folder.path)
            if observer is not None and not folder.path.is_dir():
                observer.stop()
                observer.join(timeout=5)
                del self.observers[folder.path]
                log.warning("%s is gone (unmounted?): it is watched again when it comes back",
                            folder.path)
            elif observer is None and self._watch(folder):
                came = True
        if came:
            self.catch_up()

    def _stop_observers(self) -> None:
        for observer in self.observers.values():
            observer.stop()
        for observer in self.observers.values():
            observer.join(timeout=5)
        self.observers = {}

    # intake ----------------------------------------------------------------------------------

    @property
    def outputs(self) -> list[Path]:
        """The watch folders' output folders (never taken in as new photos)."""
        return [f.output.resolve() for f in self.config.watch]

    def folder_for(self, path: Path) -> WatchFolder | None:
        """The deepest watch folder containing ``path``."""
        matches = [f for f in self.config.watch if path.is_relative_to(f.path)]
        return max(matches, key=lambda f: len(f.path.parts), default=None)

    def catch_up(self) -> None:
        """Reconcile every folder with the catalog: queue what is new or not yet done."""
        for folder in self.config.watch:
            known = []
            for path in scan_folder(folder, self.outputs):
                row = self._known(path)
                if row is not None:
                    known.append((path, row))
                else:
                    self.tracker.touch(path, folder.quiet_seconds)
            ratings = {}
            if folder.min_rating is not None and known:
                # Rated up while the daemon was down, or still not: asked again each scan, for
                # all of them at once (one listing per folder).
                culling = current_culling(self.app.catalog.db, [row for _, row in known])
                ratings = {file_id: c.rating for file_id, c in culling.items()}
            listings: dict[Path, set[str]] = {}
            for path, row in known:
                if path.parent not in listings:
                    listings[path.parent] = folder_names(path.parent)
                if (self._pair_taken(path, folder, listings[path.parent], quiet=True)
                        and self._rating_ok(ratings.get(row["id"]), folder, path, quiet=True)):
                    self._enqueue(row["id"], folder, path)
                if folder.archive:
                    # Done before the archive was set up, or before a stop: moved now.
                    self.events.put(("archive", path))

    def _known(self, path: Path) -> dict | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return self.app.catalog.unchanged_file(path, st.st_size, st.st_mtime)

    def _handle_event(self, kind: str, path: Path) -> None:
        if kind == "settled":
            return  # a run finished: only wakes the loop (see Pipeline.on_settled)
        if kind == "scan":
            folder = self.folder_for(path)
            if folder:
                for found in scan_folder(folder, self.outputs):
                    if found.is_relative_to(path):
                        self.tracker.touch(found, folder.quiet_seconds)
            return
        if kind == "gone":
            self.tracker.forget(path)
            return
        if kind == "archive":
            self._archive(path)
            return
        folder = self.folder_for(path)
        if folder is not None and is_mask(path) and not any(path.is_relative_to(o) for o in self.outputs):
            # A photo's painted mask: settled like a photo, then its photo is done again.
            self.tracker.touch(path, folder.quiet_seconds, closed=(kind == "closed"))
            return
        if (folder is not None and folder.min_rating is not None and is_xmp_sidecar(path)
                and not any(path.is_relative_to(o) for o in self.outputs)):
            # A rating written by Lightroom or darktable: its photo may now be rated enough.
            self.tracker.touch(path, folder.quiet_seconds, closed=(kind == "closed"))
            return
        if folder is None or is_ignored(path, folder, self.outputs):
            return
        # The half of a RAW+JPEG pair that may be left out waits out the quiet period even when
        # closed and complete: its partner, copied just after it (IMG_0001.JPG sorts before
        # IMG_0001.NEF), is then there to be seen.
        early = kind == "closed" and not may_be_left_out(path, folder.pairs)
        self.tracker.touch(path, folder.quiet_seconds, closed=early)

    def intake(self, path: Path) -> None:
        """Identify a ready file by content, register it, and queue one run per recipe (for a
        photo's mask: queue its photo again for the folder's recipes that read masks)."""
        folder = self.folder_for(path)
        if folder is None:
            return
        if is_mask(path):
            self._mask_changed(path, folder)
            return
        if is_xmp_sidecar(path):
            self._sidecar_changed(path, folder)
            return
        try:
            st = path.stat()
            sha = file_sha256(path)
        except OSError as exc:
            log.warning("%s: cannot be read (%s); it will be tried again when it changes",
                        path, exc.strerror or exc)
            return
        if path in self._archive_warned and self._archived_elsewhere(sha, path):
            return  # a copy of a photo archived already (said once): the catalog keeps that one
        file_id = self.app.catalog.register_file(
            sha256=sha, path=path, size=st.st_size, mtime=st.st_mtime,
            metadata=metadata.read_summary(path))
        self.app.notify("photobatch_file_discovered", path=path, sha256=sha)
        if self._pair_taken(path, folder) and self._rated_enough(file_id, folder, path):
            self._enqueue(file_id, folder, path, say_done=True)
        if folder.archive:
            self.events.put(("archive", path))  # done already (dropped again): it goes now

    def _archived_elsewhere(self, sha: str, path: Path) -> bool:
        """Whether the catalog keeps the photo with content ``sha`` at another path that is
        there (its archived copy), so ``path`` is a duplicate of it."""
        row = self.app.catalog.file_by_sha(sha)
        return bool(row and row["path"] != str(path) and Path(row["path"]).exists())

    def _pair_taken(self, path: Path, folder: WatchFolder, names: set[str] | None = None,
                    quiet: bool = False) -> bool:
        """False for the half of a RAW+JPEG pair that the folder's ``pairs`` leaves out (it is
        catalogued, not run). Taking the other half skips its partner's queued runs: the
        partner came first and was queued before this one was there. ``names``: the folder's
        listing, when the caller has it; ``quiet``: say so only in the debug log."""
        partner = pair_partner(path, names) if folder.pairs != "both" else None
        if partner is None:
            return True
        if may_be_left_out(path, folder.pairs) and not is_ignored(partner, folder, self.outputs):
            log.log(logging.DEBUG if quiet else logging.INFO, "not queued: %s",
                    why_left_out(path, partner))
            return False
        row = self._known(partner)
        if row is not None:
            skipped = RunQueue(self.app.catalog).skip_queued(
                row["id"], f"the {'RAW' if is_raw_name(partner) else 'JPEG'} of a RAW+JPEG pair; "
                           f"{path.name} is the photo")
            if skipped:
                log.info("%s: its queued run(s) skipped: %s is the photo of the pair",
                         partner.name, path.name)
        return True

    def _rated_enough(self, file_id: int, folder: WatchFolder, path: Path,
                      quiet: bool = False) -> bool:
        """True when the folder takes every photo, or this one has its ``min_rating`` stars
        (read now: the sidecar, else the photo's own XMP or EXIF rating). ``quiet``: say why
        not only in the debug log (the catch-up scans ask about every photo again)."""
        if folder.min_rating is None:
            return True
        row = self.app.catalog.db["files"].get(file_id)
        rating = current_culling(self.app.catalog.db, [row])[file_id].rating
        return self._rating_ok(rating, folder, path, quiet)

    def _rating_ok(self, rating: int | None, folder: WatchFolder, path: Path,
                   quiet: bool = False) -> bool:
        """True when ``rating`` is enough for ``folder`` (always, without ``min_rating``); says
        why not in the log."""
        if folder.min_rating is None or (rating is not None and rating >= folder.min_rating):
            return True
        log.log(logging.DEBUG if quiet else logging.INFO,
                "%s: %s, and %s takes %d+ stars: not queued (rated up later, it will be)",
                path.name, "not rated" if rating is None else f"rated {rating}", folder.path,
                folder.min_rating)
        return False

    def _sidecar_changed(self, sidecar: Path, folder: WatchFolder) -> None:
        """A photo's XMP sidecar was written (a rating in Lightroom or darktable): the photo,
        if already in the catalog, is queued when it is now rated enough (work already done is
        not redone)."""
        stem = Path(sidecar.name[:-len(".xmp")]).stem
        for photo, row in self._known_photos(sidecar, stem, lambda p: sidecar in sidecars_for(p)):
            if self._pair_taken(photo, folder, quiet=True) and self._rated_enough(row["id"], folder, photo):
                self._enqueue(row["id"], folder, photo)

    def _mask_changed(self, mask: Path, folder: WatchFolder) -> None:
        """A mask was added or changed: its photo, if already in the catalog, is done again by
        the folder's recipes with ``mask = "sidecar"`` (a photo still to come reads it then)."""
        names = [n for n in folder.recipes if self.app.recipes[n].mask == "sidecar"]
        if not names:
            return
        stem = mask.name[:-len(MASK_SUFFIX)]
        for photo, row in self._known_photos(mask, stem, lambda p: mask_path_for(p) == mask):
            if self._pair_taken(photo, folder, quiet=True):  # IMG_0001.mask.png: the pair's one
                self._enqueue(row["id"], folder, photo, names=names, force=True)

    def _known_photos(self, companion: Path, stem: str, belongs) -> list[tuple[Path, dict]]:
        """The catalogued photos named ``stem.*`` beside ``companion`` (a mask, a sidecar) that
        it ``belongs`` to, with their file rows."""
        found = []
        for photo in sorted(companion.parent.glob(glob.escape(stem) + ".*")):  # [ ] * ? in names
            row = self._known(photo) if is_candidate(photo) and belongs(photo) else None
            if row is not None:
                found.append((photo, row))
        return found

    def _enqueue(self, file_id: int, folder: WatchFolder, path: Path,
                 names: list[str] | None = None, force: bool = False,
                 say_done: bool = False) -> None:
        """Queue ``path``'s runs of ``folder``'s recipes (or ``names``) that are not queued or
        done already; ``say_done``: say in the log which were done already (a photo dropped
        again), once, as the scans that ask again every few minutes do not."""
        runs = RunQueue(self.app.catalog)
        # What failed while this daemon ran is not retried by its scans, which come every
        # rescan_minutes (a broken file would fail again each time, forever); what failed
        # before it started gets one more try (a model or reader may have been fixed).
        failed_since = None if force else self.started_at
        # Resolved, as the catalog records a run's folder (Session.prepare): done is per folder.
        out_dir = (mirrored_output(folder.output, folder.path, path) if folder.mirror_folders
                   else folder.output).resolve()
        queued = []
        for name in names or folder.recipes:
            recipe = self.app.recipes[name]
            # The config's check (build_app) saw a model; it may have gone since (an unmounted
            # disk). Queued all the same: the run fails with the reason in the catalog and is
            # retried, so a model back in place picks the photo up, and `rerun --failed` can.
            model = recipe.model or folder.model or self.config.model
            try:
                model_id = resolve_model(model).model_id
            except ModelError as exc:
                log.warning("%s [%s]: %s", path.name, name, exc)
                model_id = model
            fingerprint = self.app.for_model(recipe, model).fingerprint
            if runs.enqueue(file_id=file_id, recipe=name, fingerprint=fingerprint,
                            model_id=model_id, output_dir=str(out_dir), force=force,
                            failed_since=failed_since, failed_by=worker_id()):
                queued.append(name)
            elif say_done:
                done = self.app.catalog.finished_run(file_id, fingerprint, model_id, name,
                                                     output_dir=str(out_dir))
                if done is None or not done.get("output_path"):
                    continue  # queued or running already, or failed while this daemon ran
                if Path(done["output_path"]).exists():
                    log.info("not queued: %s [%s] is done already -> %s", path.name, name,
                             done["output_path"])
                elif runs.enqueue(file_id=file_id, recipe=name, fingerprint=fingerprint,
                                  model_id=model_id, output_dir=str(out_dir), force=True):
                    queued.append(name)  # dropped again as its output was deleted: made again
        if queued:
            log.info("queued %s [%s]", path.name, ", ".join(queued))
            self.pipeline.wake()

    # main loop -------------------------------------------------------------------------------

    def _on_outcome(self, outcome: Outcome) -> None:
        self.tally.count(outcome.status, outcome.seconds, final=not outcome.retrying)
        if outcome.status == "done":
            log.info("done %s [%s] -> %s (%.1f s)", outcome.path.name, outcome.recipe,
                     outcome.output, outcome.seconds)
        elif outcome.status == "skipped":
            log.info("skipped %s [%s]: %s", outcome.path.name, outcome.recipe, outcome.error)
        else:
            self.failures += 1
            log.error("failed %s [%s]: %s", outcome.path, outcome.recipe, outcome.error)
        folder = self.folder_for(outcome.path)
        if folder is not None and folder.archive and outcome.status != "failed":
            # Moved by the main loop, which owns the watched folders' events.
            self.events.put(("archive", outcome.path))

    def _archive(self, photo: Path) -> None:
        """Move ``photo`` (and what goes with it) to its folder's archive if it is done."""
        from photobatch.daemon.archive import archive_when_done

        folder = self.folder_for(photo)
        if folder is None or not folder.archive:
            return
        moved = archive_when_done(self.app.catalog, folder, photo,
                                  [f.path for f in self.config.watch], self._archive_warned)
        for path in moved:
            self.tracker.forget(path)
        if moved and photo.parent != folder.path:
            self._emptied[photo.parent] = folder.path  # the shoot's folder may be empty now

    def _remove_emptied_folders(self) -> None:
        """Remove the inbox subfolders that archiving emptied, once left alone for a while
        (a shoot dropped as a folder leaves no empty folder behind)."""
        from photobatch.daemon.archive import remove_emptied_folder

        for emptied, inbox in list(self._emptied.items()):
            folder = self.folder_for(emptied)
            idle = max(EMPTIED_FOLDER_IDLE_SECONDS, folder.quiet_seconds if folder else 0)
            if remove_emptied_folder(emptied, inbox, idle) is not None:
                del self._emptied[emptied]

    def _reload(self) -> None:
        self.reload_requested = False
        try:
            config = load_config(self.config_path) if self.config_path or not self.config.source \
                else load_config(Path(self.config.source))
            app = self.build_app(config)
        except (ConfigError, UsageError, ValueError) as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self.app.recipes = app.recipes
        app.close()  # built to check the new config; the running App takes what it holds
        # A changed [copyright], [notify] or [[watch.export]] counts from the next photo on.
        self.app.use_settings(**config.app_settings())
        if config.device != self.config.device:
            # Models load on the new device from the next photo on (each device has its cache entry).
            self.app.use_device(config.device)
        if config.precision != self.config.precision:
            self.app.use_precision(config.precision)
        folders_changed = config.watch != self.config.watch
        self.config = config
        if folders_changed and not self.once:
            self._stop_observers()
            self._start_observers()
        log.info("reloaded %s: %d recipe(s), %d folder(s)", config.source, len(app.recipes),
                 len(config.watch))
        self.catch_up()

    def _scheduled_backup(self) -> None:
        """Back up the catalog when its last backup is ``[backups] every_days`` old (a week by
        default: darktable's snapshots)."""
        from photobatch.catalog.backup import BackupError, scheduled_backup

        if not self.config.backup_every_days:
            return  # turned off
        try:
            path = scheduled_backup(self.app.catalog_path, self.config.backup_every_days,
                                    self.config.backup_keep)
        except BackupError as exc:  # the daemon goes on; the next check tries again
            log.warning("the catalog backup failed: %s", exc)
            return
        if path:
            log.info("backed up the catalog to %s", path)

    def _clean_stale_temps(self) -> None:
        """Remove temp outputs left by a process that died mid-write (never a finished output)."""
        for folder in self.config.watch:
            if not folder.output.is_dir():
                continue
            for temp in folder.output.rglob(".*.partial*"):
                # ".IMG_1_recipe.<pid>.partial.jpg", and the metadata writer's temp beside it.
                match = re.search(r"\.(\d+)\.partial", temp.name)
                if match and not pid_alive(f"{match.group(1)}@{socket.gethostname()}"):
                    temp.unlink(missing_ok=True)
                    log.info("removed %s, left by a stopped process", temp)

    def _report_caught_up(self, wait: float) -> None:
        """Say, once the daemon has had no work for ``wait`` seconds (a shoot done), what it did
        since the last time: in the log, and to plugins (a notification, an upload)."""
        if not self.tally:
            return
        stretch = self.tally.settle(self._idle(include_delayed=True), wait)  # retries to come count
        if stretch is None:
            return
        log.info("%s", stretch.text())
        self.app.notify("photobatch_caught_up", app=self.app, done=stretch.done,
                        skipped=stretch.skipped, failed=stretch.failed, seconds=stretch.seconds)

    def _idle(self, include_delayed: bool) -> bool:
        """Nothing to do: no event, no file still being copied, nothing in the pipeline, no run
        queued (retries waiting for their time included or not)."""
        return (self.events.empty() and len(self.tracker) == 0 and self.pipeline.idle()
                and RunQueue(self.app.catalog).pending(include_delayed=include_delayed) == 0)

    def _finished_once(self) -> bool:
        return self._idle(include_delayed=False)

    def run(self) -> int:
        """Run until stopped; return the exit status."""
        self.app = self.build_app(self.config)
        lock = CatalogLock(self.app.catalog_path)
        lock.acquire()
        try:
            return self._run_locked()
        finally:
            self._restore_signals()
            lock.release()
            self.app.close()

    def _run_locked(self) -> int:
        self.started_at = now_text()
        self._install_signals()
        requeued = RunQueue(self.app.catalog).requeue_orphans()
        if requeued:
            log.info("requeued %d run(s) left unfinished by an earlier stop", requeued)
        self._clean_stale_temps()
        state = DaemonState(self.app.catalog)
        state.started([str(f.path) for f in self.config.watch])
        session = Session(self.app, out_dir=Path("."))
        self.pipeline = Pipeline(session, decode_workers=self.config.decode_workers,
                                 encode_workers=self.config.encode_workers,
                                 max_attempts=1 if self.once else self.config.max_attempts,
                                 retry_delay=self.config.retry_delay_seconds,
                                 on_outcome=self._on_outcome, wait_for_space=not self.once,
                                 on_settled=lambda: self.events.put(("settled", None)))
        self.pipeline.start()
        self.app.notify("photobatch_daemon_started", app=self.app)
        if not self.once:
            self._start_observers()
        self.catch_up()
        for path in self.tracker.take_ready():  # files already quiet need not wait for a tick
            self.intake(path)
        next_scan = time.monotonic() + self.config.rescan_minutes * 60
        next_beat = next_check = next_backup = 0.0
        was_waiting = False
        while not self.stop_signals:
            if self.reload_requested:
                self._reload()
            try:
                kind, path = self.events.get(timeout=TICK_SECONDS)
                self._handle_event(kind, path)
                while not self.events.empty():
                    self._handle_event(*self.events.get_nowait())
            except queue.Empty:
                pass
            for path in self.tracker.take_ready():
                self.intake(path)
            now = time.monotonic()
            if now >= next_scan:
                self.catch_up()
                next_scan = now + self.config.rescan_minutes * 60
            if now >= next_beat:
                waiting = self.pipeline.waiting_for_space()
                state.heartbeat(self.pipeline.current(), state=WAITING_FOR_SPACE
                                if waiting else "running")
                if waiting and not was_waiting:
                    self.app.notify("photobatch_needs_attention", app=self.app, text=(
                        "an output disk is full: photobatch waits, trying one photo now and "
                        "then, and goes on by itself once there is room (nothing is lost)"))
                was_waiting = waiting
                next_beat = now + HEARTBEAT_SECONDS
            if not self.once and now >= next_check:
                self._check_folders()
                self._remove_emptied_folders()
                next_check = now + FOLDER_CHECK_SECONDS
            if not self.once and now >= next_backup:
                self._scheduled_backup()
                next_backup = now + BACKUP_CHECK_SECONDS
            if self.once and self._finished_once():
                self._report_caught_up(wait=0)
                break
            self._report_caught_up(wait=CAUGHT_UP_SECONDS)
        log.info("stopping: no new work is taken; in-flight work gets %.0f s",
                 self.config.stop_timeout_seconds)
        self.app.notify("photobatch_daemon_stopping", app=self.app,
                        reason="idle" if self.once and not self.stop_signals else "signal")
        self._stop_observers()
        state.heartbeat([], state="stopping")
        self.pipeline.stop(self.config.stop_timeout_seconds)
        state.heartbeat([], state="stopped")
        return 1 if (self.once and self.failures) else 0
