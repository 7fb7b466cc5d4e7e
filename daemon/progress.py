"""A progress bar with an ETA on a terminal, and nothing but the messages elsewhere (logs, pipes)."""

from __future__ import annotations

import sys
from typing import IO

import click


class Progress:
    """Counts work done; draws a tqdm bar only when ``stream`` is a terminal.

    Messages go through ``echo`` so they print above the bar instead of tearing it.
    """

    def __init__(self, total: int, desc: str, unit: str = "photo", stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.bar = None
        if total > 0 and _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream,
                            dynamic_ncols=True, leave=False,
                            bar_format="{desc} {bar} {n_fmt}/{total_fmt} {unit}s "
                                       "[{elapsed} elapsed, ETA {remaining}]")

    def advance(self, n: int = 1, current: str | None = None) -> None:
        """Count ``n`` more done; ``current`` names what comes next (shown after the bar)."""
        if self.bar is not None:
            if current is not None:
                self.bar.set_postfix_str(current, refresh=False)
            self.bar.update(n)

    def echo(self, text: str, err: bool = False, **style) -> None:
        """Print a line (above the bar when one is drawn)."""
        if self.bar is not None and not err:
            self.bar.write(click.style(text, **style) if style else text, file=self.stream)
        else:
            click.secho(text, err=err, **style)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
