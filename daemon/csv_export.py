"""CSV for spreadsheets: nested values as JSON, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import json
from typing import IO, Any, Iterable

# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets; EXIF text
# comes from whoever made the file, so it is written with a leading apostrophe (OWASP advice).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One value as a CSV cell: None empty, lists and dicts as JSON, formula-like text defused."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(stream: IO[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write dict rows with a header (the union of their keys, in first-seen order); return the count."""
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    writer = csv.writer(stream)
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return len(rows)
