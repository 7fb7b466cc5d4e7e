"""What changed in a recipe since a run was made: its recorded params against the recipe's now.

A stale output says "recipe changed"; before hours of re-running a wedding, the photographer
sees what changed: ``strength 0.2 → 0.25``, ``output.quality 95 → 90``, ``output.watermark_image
(a new file)``.
"""

from __future__ import annotations

import json
import os
from typing import Any

# Longer values are cut (prompts): the change is what matters, not the whole text.
_SHOWN = 32


def recipe_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The fields that differ between two ``Recipe.params()`` records, as short phrases, in a
    stable order (top-level fields first, then ``output.*`` and the other tables)."""
    # As JSON has them (a tuple is a list there): a run's params were read back from JSON.
    old, new = _flat(json.loads(json.dumps(before))), _flat(json.loads(json.dumps(now)))
    changes = []
    for key in sorted(set(old) | set(new), key=lambda k: (k.count("."), k)):
        if old.get(key) == new.get(key):
            continue
        if key.endswith("_sha256"):
            named = key.removesuffix("_sha256")
            if old.get(named) != new.get(named):
                continue  # the file's name changed too: said once, by that field
            changes.append(f"{named} (a new file)")
            continue
        before_value, now_value = old.get(key), new.get(key)
        start = 0
        if isinstance(before_value, str) and isinstance(now_value, str):
            # Long texts (prompts) are shown from a little before where they part.
            common = len(os.path.commonprefix([before_value, now_value]))
            start = max(0, common - 10)
        changes.append(f"{key} {_shown(before_value, start)} → {_shown(now_value, start)}")
    return changes


def summary(changes: list[str], most: int = 3) -> str:
    """The first ``most`` changes, and how many more."""
    shown = ", ".join(changes[:most])
    return shown + (f" and {len(changes) - most} more" if len(changes) > most else "")


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if key == "family":
            continue  # a run records the recipe as it ran on its model's family
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(value: Any, start: int = 0) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        text = ("…" if start else "") + value[start:start + _SHOWN]
        return f'"{text}…"' if len(value) > start + _SHOWN else f'"{text}"'
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"
