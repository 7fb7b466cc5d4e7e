"""Classical steps after the runner: which ones apply to a recipe, and applying them.

A step is an object a plugin contributes through ``photobatch_steps``: a ``name`` and
``apply(image, params, source) -> image``, where ``image`` is the full-size result so far and
``source`` the upright original at the same size. Until recipes name their steps, plugins
select them per recipe through ``photobatch_post_steps`` (docs/plugins.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from PIL import Image

from photobatch.plugins.failures import PluginFailure, one_line, record_failure

log = logging.getLogger(__name__)


class StepError(ValueError):
    """A step that cannot run or failed, with a one-line reason naming the step and plugin."""


@dataclass(frozen=True)
class PostStep:
    """One step to apply: the contributed object, its params, and the plugin that selected it."""

    name: str
    selected_by: str
    params: Mapping[str, Any] = field(default_factory=dict)
    step: Any = None
    owner: str = ""
    problem: str | None = None  # why it cannot run; raised when applied, inside the timed stage


def select_post_steps(app, recipe) -> list[PostStep]:
    """The steps plugins select for ``recipe``, in plugin registration order; never raises."""
    # The recipe's own steps come first, in its order; plugins may add theirs after.
    selected = [_resolve(app, f"recipe {recipe.name}", (name, dict(params)))
                for name, params in getattr(recipe, "post", ())]
    for impl in app.pm.hook.photobatch_post_steps.get_hookimpls():
        plugin = app.pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            entries = list(impl.function(recipe=recipe) or ())
        except Exception as exc:
            record_failure(app.pm, PluginFailure.from_exception(plugin, "photobatch_post_steps", exc),
                           log_traceback=exc)
            selected.append(PostStep("?", plugin, problem=(
                f"plugin {plugin!r} failed choosing steps: {type(exc).__name__}: {one_line(exc)}")))
            continue
        selected.extend(_resolve(app, plugin, entry) for entry in entries)
    return selected


def _resolve(app, plugin: str, entry) -> PostStep:
    if isinstance(entry, str):
        name, params = entry, {}
    elif (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
          and isinstance(entry[1], Mapping)):
        name, params = entry
    else:
        return PostStep("?", plugin, problem=(
            f"plugin {plugin!r} selected {one_line(repr(entry))}; expected a step name or "
            "a (name, params) pair"))
    if name not in app.steps:
        known = ", ".join(sorted(app.steps.items)) or "none"
        return PostStep(name, plugin, params, problem=(
            f"plugin {plugin!r} selected step {name!r}, which no plugin contributes (known: {known})"))
    return PostStep(name, plugin, dict(params), app.steps.get(name), app.steps.owner(name))


def apply_post_steps(steps: list[PostStep], image: Image.Image, source: Image.Image,
                     pm=None) -> Image.Image:
    """Apply ``steps`` in order to ``image``; raise StepError on the first that cannot run."""
    for post in steps:
        if post.problem:
            raise StepError(post.problem)
        try:
            result = post.step.apply(image, dict(post.params), source)
        except Exception as exc:
            record_failure(pm, PluginFailure.from_exception(post.owner, f"step {post.name}", exc),
                           log_traceback=exc)
            raise StepError(f"step {post.name!r} (plugin {post.owner!r}) failed: "
                            f"{type(exc).__name__}: {one_line(exc)}") from exc
        if not isinstance(result, Image.Image):
            raise StepError(f"step {post.name!r} (plugin {post.owner!r}) returned "
                            f"{type(result).__name__}, not an image")
        image = result
    return image
