"""``photobatch run``'s stages over a list of files: the daemon's shape without its queue.

On a GPU the photos are decoded in threads ahead of the model, same-recipe photos share a
pipeline call (``batch``), and outputs are written in threads while the GPU works on the next
ones. When the model fills the CPU, each photo goes through its stages in turn instead (see
``photobatch.daemon.pipeline``). Outcomes are reported in the files' order.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from photobatch.daemon.session import Outcome, Session


def process_files(session: Session, files: Iterable[Path], recipe,
                  on_outcome: Callable[[Outcome], None], *, decode_workers: int = 2,
                  encode_workers: int = 2) -> None:
    """Run ``recipe`` on every file, calling ``on_outcome`` once per file, in order."""
    if session.app.model_fills_the_cpu(recipe.name):
        for path in files:
            on_outcome(session.process(path, recipe))
        return
    batch = max(1, getattr(recipe, "batch", 1))
    if recipe.mask != "none" or recipe.full_resolution == "tiled":
        batch = 1  # per-face and tiled runs make several calls of their own per photo
    # Enough decoded ahead to fill a batch while the previous one runs; memory stays bounded.
    ahead = decode_workers + 2 * batch
    with ThreadPoolExecutor(decode_workers, thread_name_prefix="pb-prepare") as prepare_pool, \
            ThreadPoolExecutor(encode_workers, thread_name_prefix="pb-finish") as finish_pool:
        pending = iter(files)
        prepared: collections.deque[Future] = collections.deque()
        reported: collections.deque[Future] = collections.deque()

        def top_up() -> None:
            while len(prepared) < ahead:
                path = next(pending, None)
                if path is None:
                    return
                prepared.append(prepare_pool.submit(session.prepare, path, recipe))

        def report(wait: bool) -> None:
            while reported and (wait or reported[0].done()):
                on_outcome(reported.popleft().result())

        top_up()
        while prepared:
            # The next photo, and those after it already decoded, up to a batch.
            jobs = [prepared.popleft().result()]
            while prepared and len(jobs) < batch and prepared[0].done():
                jobs.append(prepared.popleft().result())
            top_up()
            ready = [job for job in jobs if not isinstance(job, Outcome)]
            results = iter(session.generate_batch(ready) if ready else [])
            for job in jobs:
                done: Future = Future()
                if isinstance(job, Outcome):
                    done.set_result(job)  # skipped or failed while preparing
                else:
                    result = next(results)
                    if isinstance(result, Outcome):
                        done.set_result(result)
                    else:
                        done = finish_pool.submit(session.finish, result)
                reported.append(done)
            report(wait=False)
        report(wait=True)
