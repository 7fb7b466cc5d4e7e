"""Plain-text tables for the terminal (no dependency: a dozen lines do it)."""

from __future__ import annotations


def render_table(headers: list[str], rows: list[list[object]], max_width: int = 48) -> str:
    """Left-aligned columns separated by two spaces; long cells are cut with an ellipsis, except
    in the last column, which aligns nothing after it (paths and errors stay whole there)."""
    def cell(value: object, last: bool = False) -> str:
        text = "" if value is None else str(value).replace("\n", " ")
        return text if last or len(text) <= max_width else text[: max_width - 1] + "…"

    last = len(headers) - 1
    table = [[cell(h) for h in headers]] + [[cell(v, i == last) for i, v in enumerate(row)]
                                            for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
