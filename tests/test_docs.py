"""Docs as tests: every hook is documented with its exact signature and a working example, and
every command has --help text and a section in docs/cli.md.

docs/cli.md is generated from the commands' help; after changing a command, rewrite it with
``PHOTOBATCH_UPDATE_DOCS=1 python -m pytest tests/test_docs.py``.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

from photobatch.daemon.cli import PLUGIN_MANAGER_KEY, main
from photobatch.plugins import hookspecs
from photobatch.plugins.events import EVENTS, notify
from photobatch.plugins.manager import build_plugin_manager, collect
from photobatch.plugins.registry import CONTRIBUTION_HOOKS

DOCS = Path(__file__).resolve().parents[1] / "docs"
PLUGINS_MD = DOCS / "plugins.md"
CLI_MD = DOCS / "cli.md"
RECIPES_MD = DOCS / "recipes.md"
UPDATE = os.environ.get("PHOTOBATCH_UPDATE_DOCS") == "1"
CLI_HEADER = """\
# Command-line reference

Generated from each command's `--help` by `tests/test_docs.py` (which fails when this file is out
of date; `PHOTOBATCH_UPDATE_DOCS=1 python -m pytest tests/test_docs.py` rewrites it). Commands
that plugins add are documented by their plugins.
"""

# Arguments to call each event's documented example with.
EVENT_ARGS = {
    "photobatch_file_discovered": dict(path=Path("IMG_0001.JPG"), sha256="ab" * 32),
    "photobatch_run_started": dict(path=Path("IMG_0001.JPG"), recipe="color-correct", run_id=1),
    "photobatch_output_written": dict(source=Path("IMG_0001.JPG"), output=Path("out/IMG_0001.jpg"),
                                      recipe="color-correct", run_id=1),
    "photobatch_run_failed": dict(path=Path("IMG_0001.JPG"), recipe="color-correct",
                                  error="error while reading IMG_0001.JPG: truncated", run_id=None),
    "photobatch_daemon_started": dict(app=SimpleNamespace(recipes={})),
    "photobatch_caught_up": dict(app=SimpleNamespace(recipes={}), done=120, skipped=3, failed=2,
                                 seconds=840.0),
    "photobatch_daemon_stopping": dict(app=SimpleNamespace(recipes={}), reason="signal"),
    "photobatch_needs_attention": dict(app=SimpleNamespace(recipes={}), text="an output disk is full"),
}


def hook_specs() -> dict[str, object]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("photobatch_") and callable(fn)}


def documented_hooks() -> dict[str, tuple[str, str]]:
    """hook name -> (the heading's signature, the section's first python example)."""
    text = PLUGINS_MD.read_text(encoding="utf-8")
    reference = text.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    sections = {}
    for heading, body in re.findall(r"^### (.+?)\n(.*?)(?=^### |\Z)", reference, re.M | re.S):
        name = heading.split("(", 1)[0]
        example = re.search(r"```python\n(.*?)```", body, re.S)
        sections[name] = (heading.strip(), example.group(1) if example else "")
    return sections


def test_every_hook_has_a_one_line_docstring():
    for name, spec in hook_specs().items():
        doc = (spec.__doc__ or "").strip()
        assert doc and "\n" not in doc, f"{name} needs a one-line docstring in hookspecs.py"


def test_every_hook_is_documented_with_its_exact_signature():
    specs, docs = hook_specs(), documented_hooks()
    assert set(specs) - set(docs) == set(), "hooks missing from docs/plugins.md"
    assert set(docs) - set(specs) == set(), "docs/plugins.md documents hooks that do not exist"
    for name, spec in specs.items():
        assert docs[name][0] == f"{name}{inspect.signature(spec)}", f"signature of {name} in the docs"


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_every_hook_example_loads_and_works(hook, tmp_path, monkeypatch):
    _, example = documented_hooks()[hook]
    assert "@hookimpl" in example and f"def {hook}(" in example, f"{hook} needs an example"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "example.py").write_text(example, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PHOTOBATCH_OUTPUT_LOG", str(tmp_path / "outputs.tsv"))
    host = build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=folder)
    assert list(host.failures) == [] and hook in host.hooks_of("example.py")
    if hook in CONTRIBUTION_HOOKS:
        assert len(collect(host, hook)) >= 1  # named, with the methods of its kind
    elif hook in EVENTS:
        assert notify(host, hook, **EVENT_ARGS[hook]) == []
    elif hook == "photobatch_post_steps":
        assert host.hook.photobatch_post_steps(recipe=SimpleNamespace(name="portrait-soft")) != [[]]
    else:
        assert getattr(host.hook, hook)() != []


def walk_commands():
    """(path, command, context) for every built-in command, depth first, sorted by name."""
    root = click.Context(main, info_name="photobatch", terminal_width=80, **main.context_settings)
    root.meta[PLUGIN_MANAGER_KEY] = build_plugin_manager(entrypoints=False)
    found = []

    def visit(command, ctx):
        found.append((ctx.command_path, command, ctx))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    visit(sub, click.Context(sub, info_name=name, parent=ctx, terminal_width=80))

    visit(main, root)
    return found


def render_cli_reference() -> str:
    parts = [CLI_HEADER]
    for path, command, ctx in walk_commands():
        parts.append(f"\n## {path}\n\n```\n{command.get_help(ctx)}\n```\n")
    return "".join(parts)


def test_every_command_and_option_has_help_text():
    commands = walk_commands()
    assert {"photobatch run", "photobatch plugins", "photobatch catalog ls"} <= {p for p, _, _ in commands}
    for path, command, ctx in commands:
        assert (command.help or command.short_help or "").strip(), f"{path} has no --help text"
        for param in command.get_params(ctx):
            if isinstance(param, click.Option):
                assert (param.help or "").strip(), f"{path} {param.opts[0]} has no help text"


def test_every_command_is_in_the_cli_reference():
    expected = render_cli_reference()
    if UPDATE:
        CLI_MD.write_text(expected, encoding="utf-8")
    current = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    documented = set(re.findall(r"^## (photobatch.*)$", current, re.M))
    missing = [p for p, _, _ in walk_commands() if p not in documented]
    hint = "rewrite it: PHOTOBATCH_UPDATE_DOCS=1 python -m pytest tests/test_docs.py"
    assert not missing, f"undocumented in docs/cli.md: {', '.join(missing)}; {hint}"
    assert current == expected, f"docs/cli.md is out of date with the commands' --help; {hint}"


def test_every_recipe_field_is_explained_and_the_recipe_reference_is_current():
    from photobatch.recipes.field_help import FIELD_HELP
    from photobatch.recipes.reference import field_rows, render_markdown
    from photobatch.recipes.schema import _OUTPUT_FIELDS, _RECIPE_FIELDS

    rows = field_rows()
    names = [name for name, _, _ in rows]
    assert set(names) == (set(_RECIPE_FIELDS) - {"name"}) | {f"output.{k}" for k in _OUTPUT_FIELDS}
    assert set(FIELD_HELP) == set(names), "FIELD_HELP and the schema's fields differ"
    assert all(text for _, _, text in rows)
    assert dict((n, d) for n, d, _ in rows)["strength"] == "0.2"
    expected = render_markdown()
    if UPDATE:
        RECIPES_MD.write_text(expected, encoding="utf-8")
    assert RECIPES_MD.read_text(encoding="utf-8") == expected, (
        "docs/recipes.md is out of date: PHOTOBATCH_UPDATE_DOCS=1 python -m pytest tests/test_docs.py")
