"""The daemon's pipelined stages: a pool prepares, one thread owns the GPU, a pool writes.

Jobs come from the catalog queue only while fewer than ``max_in_flight`` are in the pipeline,
so memory stays flat however many files are queued; the GPU thread never waits on decoding
while prepared jobs are buffered.

When the model runs on the CPU with a thread on every core, there is no device to keep busy
while the CPU prepares and writes: stages run beside the model slow it down by more than they
take (torch's thread team stalls whenever a core is taken from it; bench/RESULTS.md). Then the
model's thread runs each job's stages itself, one job after the other.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from photobatch.catalog.queue import RunQueue
from photobatch.catalog.workers import worker_id
from photobatch.daemon.full_disks import FullDisks
from photobatch.daemon.session import Job, Outcome, Session, batch_size
from photobatch.daemon.tables import duration_text

log = logging.getLogger(__name__)

_STOP = object()


class Pipeline:
    """Claims queued runs and moves each through prepare -> generate -> finish."""

    def __init__(self, session: Session, *, decode_workers: int = 2, encode_workers: int = 2,
                 max_attempts: int = 3, retry_delay: float = 60.0,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 inline_stages: bool | None = None,
                 on_settled: Callable[[], None] | None = None, wait_for_space: bool = True):
        self.session = session
        self.app = session.app
        # None: a job's stages run in the model's thread when its model fills the CPU (see
        # the module's docstring); True/False: always/never.
        self.inline_stages = inline_stages
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        # A full output disk: the run waits for space (its attempt given back) and no other run
        # is claimed until then, rather than each failing in turn (``watch --once`` fails it).
        self.wait_for_space = wait_for_space
        # Disks found full: their runs wait, one tried after each delay, while other disks' go on.
        self._full = FullDisks(retry_delay)
        self.on_outcome = on_outcome or (lambda outcome: None)
        # Called once a run has left the pipeline (idle() may have changed): the daemon's loop
        # checks at once whether ``--once`` is done instead of at its next tick.
        self.on_settled = on_settled or (lambda: None)
        self.worker = worker_id()
        # Room for the largest batch a recipe asks for, so the GPU thread can fill it.
        self.max_batch = max([getattr(r, "batch", 1) for r in self.app.recipes.values()] + [1])
        self.max_batch = min(self.max_batch, 16)
        self.max_in_flight = decode_workers + encode_workers + 2 + self.max_batch
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._prepare_pool = ThreadPoolExecutor(decode_workers, thread_name_prefix="pb-prepare")
        self._finish_pool = ThreadPoolExecutor(encode_workers, thread_name_prefix="pb-finish")
        self._gpu_queue: "queue.Queue" = queue.Queue(maxsize=max(2, decode_workers, self.max_batch))
        self._held: list = []  # prepared jobs taken off the queue that did not fit the last batch
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._in_flight: dict[int, str] = {}
        self._abandoned: set[int] = set()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._dispatch_loop, name="pb-dispatch", daemon=True),
            threading.Thread(target=self._gpu_loop, name="pb-gpu", daemon=True),
        ]

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the GPU thread."""
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Tell the dispatcher new work was queued."""
        self._wake.set()

    def current(self) -> list[str]:
        """Files being worked on now."""
        with self._lock:
            return sorted(set(self._in_flight.values()))

    def waiting_for_space(self) -> bool:
        """True while an output disk was found full and its photos wait for room."""
        return bool(self._full)

    def idle(self) -> bool:
        """True when nothing is in the pipeline."""
        with self._lock:
            return not self._in_flight

    def stop(self, timeout: float) -> bool:
        """Stop claiming; let in-flight work finish for up to ``timeout`` s, then give it back.

        Returns True when everything in flight finished.
        """
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        while not self.idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = self.idle()
        if not finished:
            with self._lock:
                unfinished = list(self._in_flight)
            runs = RunQueue(self.app.catalog)
            for run_id in unfinished:
                self._abandoned.add(run_id)  # the GPU thread must not start it now
                runs.release(run_id)
            log.warning("stopped with %d run(s) unfinished; they stay queued", len(unfinished))
        self._gpu_queue.put(_STOP)
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)
        self._finish_pool.shutdown(wait=False, cancel_futures=True)
        return finished

    # stages ----------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        queue_ = None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            if self._stopping.is_set():
                self._slots.release()
                break
            try:
                queue_ = queue_ or RunQueue(self.app.catalog)
                claimed = queue_.claim(self.worker, accept=self._full.may_take if self._full else None)
            except Exception:
                log.exception("could not claim work from the catalog")
                claimed = None
            if claimed is None:
                self._slots.release()
                self._wake.wait(0.5 if self._full else 1.0)  # a full disk's wait may end
                self._wake.clear()
                continue
            self._full.taken(claimed["id"], claimed["output_dir"])
            with self._lock:
                self._in_flight[claimed["id"]] = Path(claimed["path"]).name
            if self._inline(claimed["recipe"]):
                self._gpu_queue.put((claimed, None))  # prepared by the model's thread
            else:
                self._prepare_pool.submit(self._prepare, claimed)

    def _inline(self, recipe_name: str) -> bool:
        if self.inline_stages is not None:
            return self.inline_stages
        return self.app.model_fills_the_cpu(recipe_name)

    def _prepare(self, claimed: dict) -> None:
        job = self._prepared(claimed)
        if job is not None:
            self._gpu_queue.put((claimed, job))

    def _prepared(self, claimed: dict) -> Job | None:
        """The prepared job of a claimed run, or None when it ended already (skipped, failed)."""
        try:
            recipe = self.app.recipes.get(claimed["recipe"])  # may be gone after a reload
            path = Path(claimed["path"])
            if recipe is None:
                self.app.catalog.fail_run(claimed["id"], error=f"recipe {claimed['recipe']!r} no longer "
                                          "exists", timings={})
                return self._done(claimed, Outcome(path, claimed["recipe"], "failed",
                                                   error="recipe no longer exists"))
            job = self.session.prepare(path, recipe, run_id=claimed["id"],
                                       out_dir=Path(claimed["output_dir"]), model=claimed["model_id"])
            if isinstance(job, Outcome):
                return self._done(claimed, job)
            return job
        except Exception:
            log.exception("unexpected error preparing run %s", claimed["id"])
            self._done(claimed, None)
        return None

    def _gpu_loop(self) -> None:
        while True:
            item = self._held.pop(0) if self._held else self._gpu_queue.get()
            if item is _STOP:
                return
            if item[0]["id"] in self._abandoned:
                continue
            if item[1] is None:
                job = self._prepared(item[0])
                if job is None:
                    continue
                item = (item[0], job)
            batch = self._fill_batch(item)
            try:
                results = self.session.generate_batch([job for _, job in batch])
            except Exception:
                log.exception("unexpected error running %s", ", ".join(str(j.path) for _, j in batch))
                for claimed, _ in batch:
                    self._done(claimed, None)
                continue
            for (claimed, _), result in zip(batch, results):
                if isinstance(result, Outcome):
                    self._done(claimed, result)
                elif self._inline(result.recipe.name):
                    self._finish(claimed, result)
                else:
                    self._finish_pool.submit(self._finish, claimed, result)

    def _fill_batch(self, first) -> list:
        """``first`` plus prepared jobs already waiting that can share its pipeline call."""
        claimed, job = first
        size = batch_size(job.recipe)
        if self._inline(job.recipe.name) or size <= 1:
            return [first]
        batch = [first]
        while len(batch) < size:
            try:
                item = self._gpu_queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP or item[1] is None:  # the end, or a job still to prepare
                self._held.append(item)
                break
            if item[1].batch_key == job.batch_key:
                batch.append(item)
            else:
                self._held.append(item)
                break
        return batch

    def _finish(self, claimed: dict, job: Job) -> None:
        try:
            self._done(claimed, self.session.finish(job))
        except Exception:
            log.exception("unexpected error writing %s", job.path)
            self._done(claimed, None)

    def _done(self, claimed: dict, outcome: Outcome | None) -> None:
        try:
            if outcome is None:
                # A bug of ours, not the file's: the traceback is in the log.
                self.app.catalog.fail_run(claimed["id"], error="unexpected error (see the log)",
                                          timings={})
                outcome = Outcome(Path(claimed["path"]), claimed["recipe"], "failed",
                                  error="unexpected error (see the log)")
            if outcome.status == "failed" and outcome.disk_full and self.wait_for_space:
                RunQueue(self.app.catalog).schedule_retry(claimed["id"], self.retry_delay,
                                                          counted=False)
                self._full.found_full(claimed["output_dir"])
                outcome.retrying = True
                outcome.error = (f"{outcome.error} (nothing is lost: photobatch waits "
                                 f"{duration_text(self.retry_delay)} for space, then goes on)")
            elif outcome.status == "failed" and not outcome.lasting \
                    and claimed["attempts"] < self.max_attempts:
                RunQueue(self.app.catalog).schedule_retry(claimed["id"], self.retry_delay)
                outcome.retrying = True
                outcome.error = f"{outcome.error} (attempt {claimed['attempts']} of {self.max_attempts}; retrying)"
            if outcome.status == "done":
                self._full.wrote(claimed["output_dir"])  # an output written: there is room
            self.on_outcome(outcome)
        finally:
            self._full.ended(claimed["id"])
            with self._lock:
                self._in_flight.pop(claimed["id"], None)
            self._slots.release()
            self._wake.set()
            self.on_settled()
