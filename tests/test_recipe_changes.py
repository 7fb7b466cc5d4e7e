"""What changed in a recipe since a run was made, as ``rerun`` says it."""

from __future__ import annotations

import json

from photobatch.recipes.changes import recipe_changes, summary
from photobatch.recipes.schema import recipe_from_dict


def _params(**fields):
    return recipe_from_dict({"name": "look", **fields}).params()


def test_changed_fields_are_named_with_their_values_and_nothing_else_is():
    # A run's params come back from the catalog as JSON: lists where the recipe has tuples.
    before = json.loads(json.dumps(_params(strength=0.2, output={"quality": 95})))
    now = _params(strength=0.25, output={"quality": 90, "watermark": "© Ana Lima"})
    assert recipe_changes(before, now) == [
        "strength 0.2 → 0.25", "output.quality 95 → 90", 'output.watermark (unset) → "© Ana Lima"']
    assert recipe_changes(before, json.loads(json.dumps(before))) == []


def test_a_new_file_under_the_same_name_and_a_long_prompt_are_said_briefly():
    before = {"prompt": "a professional photograph, natural colours, balanced exposure",
              "output": {"watermark_image": "/logos/studio.png", "watermark_image_sha256": "aa"}}
    now = {"prompt": "a professional photograph, natural colours, warm light",
           "output": {"watermark_image": "/logos/studio.png", "watermark_image_sha256": "bb"}}
    changes = recipe_changes(before, now)
    # Shown from a little before where the two part, not from their common start.
    assert changes == ['prompt "… colours, balanced exposure" → "… colours, warm light"',
                       "output.watermark_image (a new file)"]
    moved = {**now, "output": {"watermark_image": "/logos/new.png", "watermark_image_sha256": "cc"}}
    assert recipe_changes(now, moved) == ['output.watermark_image "/logos/studio.png" → "/logos/new.png"']
    assert summary(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"
