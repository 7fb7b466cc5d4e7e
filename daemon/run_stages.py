"""The stages of ``photobatch run`` and ``rerun --now``: the daemon's shape without its queue.

On a GPU the photos are decoded in threads ahead of the model, same-recipe photos share a
pipeline call (the recipe's ``batch``), and outputs are written in threads while the GPU works
on the next ones. When the model fills the CPU, each photo goes through its stages in turn
instead (see ``photobatch.daemon.pipeline``). Outcomes are reported in the work's order.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from photobatch.daemon.naming import Take
from photobatch.daemon.session import Outcome, Session, batch_size


@dataclass(frozen=True)
class Work:
    """One file to run one recipe on; ``out_dir`` and ``model`` override the session's, ``seed``
    is one chosen for the photo (or "recipe": the recipe's own again)."""

    path: Path
    recipe: object
    out_dir: Path | None = None
    model: str | None = None
    seed: int | Take | str | None = None


class DiskFull(Exception):
    """The batch stopped: the output's disk is full, so every photo after would fail too."""


def process_all(session: Session, work: Sequence[Work], on_outcome: Callable[[Outcome], None], *,
                decode_workers: int = 2, encode_workers: int = 2) -> None:
    """Run every piece of ``work``, calling ``on_outcome`` once for each, in order.

    Ctrl-C (KeyboardInterrupt), or an output that finds its disk full (DiskFull, raised after
    its outcome is reported), starts nothing more, lets the outputs being written finish (and
    reports them), records the runs it cut short as failed, and is raised.
    """
    halted = False

    def report(outcome: Outcome) -> None:
        nonlocal halted
        on_outcome(outcome)
        if outcome.disk_full and not halted:  # once: the writes still reported are not raised
            halted = True
            raise DiskFull(outcome.error)

    try:
        _process_all(session, work, report, decode_workers, encode_workers)
    except KeyboardInterrupt:
        session.app.catalog.interrupt_runs()
        raise
    except DiskFull:
        session.app.catalog.interrupt_runs("stopped before it finished: the disk is full")
        raise


def _process_all(session: Session, work: Sequence[Work], on_outcome: Callable[[Outcome], None],
                 decode_workers: int, encode_workers: int) -> None:
    if all(session.app.model_fills_the_cpu(w.recipe.name) for w in work):
        for w in work:
            on_outcome(session.process(w.path, w.recipe, out_dir=w.out_dir, model=w.model, seed=w.seed))
        return
    ahead = decode_workers + 2 * max([batch_size(w.recipe) for w in work] + [1])
    with ThreadPoolExecutor(decode_workers, thread_name_prefix="pb-prepare") as prepare_pool, \
            ThreadPoolExecutor(encode_workers, thread_name_prefix="pb-finish") as finish_pool:
        pending = iter(work)
        prepared: collections.deque[Future] = collections.deque()
        reported: collections.deque[Future] = collections.deque()

        def top_up() -> None:
            # Enough decoded ahead to fill a batch while the one before runs; memory stays bounded.
            while len(prepared) < ahead:
                w = next(pending, None)
                if w is None:
                    return
                prepared.append(prepare_pool.submit(session.prepare, w.path, w.recipe,
                                                    out_dir=w.out_dir, model=w.model, seed=w.seed))

        def report(wait: bool) -> None:
            while reported and (wait or reported[0].done()):
                on_outcome(reported.popleft().result())

        try:
            top_up()
            while prepared:
                jobs = _next_batch(prepared)
                top_up()
                ready = [job for job in jobs if not isinstance(job, Outcome)]
                results = iter(session.generate_batch(ready) if ready else [])
                for job in jobs:
                    result = job if isinstance(job, Outcome) else next(results)
                    if isinstance(result, Outcome):  # skipped, or failed before writing
                        done: Future = Future()
                        done.set_result(result)
                    else:
                        done = finish_pool.submit(session.finish, result)
                    reported.append(done)
                report(wait=False)
        except (KeyboardInterrupt, DiskFull):
            # Photos not yet decoded are left; those decoding stop after it (their runs are
            # then interrupted), and outputs being written are written.
            prepare_pool.shutdown(wait=False, cancel_futures=True)
            report(wait=True)
            raise
        report(wait=True)


def _next_batch(prepared: collections.deque) -> list:
    """The next prepared job, and those after it already decoded that can share its call."""
    first = prepared.popleft().result()
    jobs = [first]
    if isinstance(first, Outcome):
        return jobs
    while prepared and len(jobs) < batch_size(first.recipe) and prepared[0].done():
        job = prepared[0].result()
        if isinstance(job, Outcome) or job.batch_key != first.batch_key:
            break
        jobs.append(prepared.popleft().result())
    return jobs

