"""``photobatch recipes``: list, show, validate and create recipes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context
from photobatch.recipes.runner_fields import FAMILY_NAMES


@click.group()
def recipes():
    """List, show, validate and create recipes."""


@recipes.command("list")
@click.pass_obj
def recipes_list(obj: Context):
    """Every recipe with its description, strength and source file."""
    from photobatch.daemon.tables import render_table

    app = obj.app()
    click.echo(render_table(
        ["name", "description", "strength", "sampler", "source"],
        [[r.name, r.description, r.strength, r.sampler, r.source]
         for r in sorted(app.recipes.values(), key=lambda r: r.name)], max_width=60))


def recipe_as_toml(recipe) -> str:
    """A recipe fully resolved, defaults included, as TOML (fields with no value are left out)."""
    import tomli_w

    def clean(value):
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    data = clean(recipe)
    data["post"] = [{"step": name, **dict(params)} for name, params in recipe.post]
    if data.get("ip_adapter"):
        data["ip_adapter"].pop("reference_sha256", None)  # computed at load, not a TOML field
    source = data.pop("source", "")
    output = data.pop("output", {})
    output.pop("watermark_image_sha256", None)  # computed at load too
    data.pop("family", None)
    family = {"family": recipe.family_tables} if recipe.family else {}
    text = tomli_w.dumps({**data, "output": output, **family})
    return f"# {recipe.name}, from {source}\n# fingerprint {recipe.fingerprint}\n{text}"


@recipes.command("show")
@click.argument("name")
@click.option("--family", type=click.Choice(FAMILY_NAMES),
              help="Show it as it runs on a model of this family (its [family.NAME] table applied).")
@click.pass_obj
def recipes_show(obj: Context, name, family):
    """One recipe, fully resolved (extends applied, defaults filled in), as TOML."""
    from photobatch.daemon.app import UsageError

    app = obj.app()
    try:
        recipe = app.recipe(name)
    except UsageError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(recipe_as_toml(recipe.for_family(family) if family else recipe), nl=False)


@recipes.command("validate")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def recipes_validate(obj: Context, files):
    """Check recipe files (extends resolved against the known recipes, the files and model they
    name), or without FILES every recipe file in the recipe folders; exit 1 on any error."""
    from photobatch.daemon.app import UsageError
    from photobatch.recipes.loader import load_recipe_variants
    from photobatch.recipes.schema import RecipeError

    app = obj.app()
    folders = app.recipe_folders
    if not files:
        files = [path for folder in folders if folder.is_dir()
                 for path in sorted(folder.glob("*.toml"))]
    bad = 0
    for path in files:
        try:
            found = load_recipe_variants(path, context=folders)
        except RecipeError as exc:
            bad += 1
            click.secho(f"invalid  {exc}", fg="red", err=True)
            continue
        for recipe in found:
            try:
                app.check_output(recipe)
                app.check_files(recipe)
                if recipe.model:
                    app.check_model(recipe.model, recipe.model_config)
                    app.check_family(recipe, recipe.model)
            except UsageError as exc:
                bad += 1
                click.secho(f"invalid  {path}: {exc}", fg="red", err=True)
                continue
            click.echo(f"ok       {path}: {recipe.name} (strength {recipe.strength}, "
                       f"{recipe.denoising_steps} denoising steps, {recipe.sampler})")
    if bad:
        raise SystemExit(1)


@recipes.command("fields")
def recipes_fields():
    """Every field a recipe file may set, with its default and what it does (docs/recipes.md)."""
    from photobatch.recipes.reference import render_text

    click.echo(render_text(), nl=False)


@recipes.command("new")
@click.argument("name")
@click.option("--from", "base", required=True, help="The recipe to start from.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write it (default: the user recipe folder).")
@click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
              help="Set a field in the new recipe (repeatable), e.g. strength=0.25, "
                   "output.quality=90, ip_adapter.scale=0.8: what `photobatch compare` showed.")
@click.pass_obj
def recipes_new(obj: Context, name, base, folder, settings):
    """Write NAME.toml extending BASE, every field listed (commented) with its current value,
    and the fields given with --set in force."""
    from photobatch.daemon.app import UsageError
    from photobatch.daemon.paths import default_recipe_dir
    from photobatch.recipes.field_help import FIELD_HELP
    from photobatch.recipes.loader import check_reference, check_watermark_image
    from photobatch.recipes.schema import RecipeError
    from photobatch.recipes.variations import parse_setting, vary

    try:
        changes = dict(parse_setting(text) for text in settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    for field in _FILE_FIELDS:
        if field in changes:
            changes[field] = _from_here(changes[field])
    app = obj.app()
    try:
        source = app.recipe(base)
        varied = vary(source, changes)  # checked as the recipe file will be
        if "output.watermark_image" in changes and varied.output.watermark_image:
            check_watermark_image(Path(varied.output.watermark_image), f"recipe {name!r}")
        if "ip_adapter.reference" in changes and varied.ip_adapter:
            for reference in varied.ip_adapter.references:
                check_reference(Path(reference), f"recipe {name!r}")
    except UsageError as exc:
        raise click.ClickException(str(exc)) from None
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from None
    if name in app.recipes:
        raise click.ClickException(f"a recipe called {name!r} exists already ({app.recipes[name].source})")
    folder = folder or default_recipe_dir()
    path = Path(folder) / f"{name}.toml"
    if path.exists():
        raise click.ClickException(f"{path} exists already")
    folder.mkdir(parents=True, exist_ok=True)
    for switch in ("freeu", "pag"):
        if changes.get(switch) is False:
            if getattr(source, switch) is not None:
                raise click.ClickException(
                    f"{switch}=false: a recipe that extends {base!r} inherits its {switch} and "
                    "cannot take it away; copy that recipe's file instead")
            del changes[switch]  # off already
    if any(field.startswith("prompt/") for field in changes):
        # A search and replace is written as the prompts it gives.
        changes = {f: v for f, v in changes.items() if not f.startswith("prompt/")}
        for key in ("prompt", "negative_prompt"):
            if getattr(varied, key) != getattr(source, key):
                changes[key] = getattr(varied, key)
    if any(field.startswith(("loras.", "lora.")) for field in changes):
        # A list is replaced, not merged: the new recipe lists every LoRA with its weight.
        changes = {f: v for f, v in changes.items() if not f.startswith(("loras.", "lora."))}
        changes["loras"] = [{"path": lora.path, "weight": lora.weight} for lora in varied.loras]
    path.write_text(_commented_copy(name, source, FIELD_HELP, changes), encoding="utf-8")
    click.echo(f"wrote {path}\nuncomment and change what you need; check it with: "
               f"photobatch recipes validate {path}")


# Fields that name a file (never a hub id): a relative path typed on the command line is from
# the current folder, while in a recipe file it is from the file's folder.
_FILE_FIELDS = ("ip_adapter.reference", "output.watermark_image")


def _from_here(value):
    """A path (or list of paths) given on the command line, made absolute."""
    if isinstance(value, list):
        return [_from_here(v) for v in value]
    if isinstance(value, str) and value:
        return str(Path(value).expanduser().absolute())
    return value


def _commented_copy(name: str, base, help_text: dict[str, str], changes=None) -> str:
    import tomli_w

    changes = dict(changes or {})
    lines = [f"# {name}: starts from {base.name!r} ({base.source}).",
             "# Every field below is the value it inherits; uncomment a line to change it.",
             f'name = "{name}"', f'extends = "{base.name}"',
             f'description = "Based on {base.name}."', ""]
    if changes:
        # Set with --set: in force; a table's fields merge into the inherited table.
        lines.append("# Set when it was made (photobatch recipes new --set):")
        tables: dict[str, dict] = {}
        for field, value in changes.items():
            table, _, key = field.partition(".")
            if key and table != "output":
                tables.setdefault(table, {})[key] = value
            elif not key:
                lines.append(f"{field} = {_inline(value)}")
        lines += [f"{table} = {_inline(values)}" for table, values in tables.items()]
        lines.append("")
    plain = {k: v for k, v in dataclasses.asdict(base).items()
             if k not in ("name", "description", "source", "output") and v is not None}
    plain["post"] = [{"step": name, **dict(params)} for name, params in base.post]
    if plain.get("ip_adapter"):
        plain["ip_adapter"] = {k: v for k, v in plain["ip_adapter"].items()
                               if k != "reference_sha256" and v is not None}
    plain["family"] = base.family_tables  # inline tables, so the line uncomments cleanly
    if not plain["family"]:
        del plain["family"]
    for key, value in plain.items():
        if key in changes:
            continue  # in force above
        rendered = f"{key} = {_inline(_plain(value))}"
        note = help_text.get(key)
        lines.append(f"# {rendered}" + (f"    # {note}" if note else ""))
    lines += ["", "[output]"]
    for key, value in dataclasses.asdict(base.output).items():
        if key == "watermark_image_sha256":
            continue  # computed at load, not a TOML field
        if value is None and f"output.{key}" not in changes:
            continue
        note = help_text.get(f"output.{key}")
        if f"output.{key}" in changes:
            value = changes[f"output.{key}"]
            lines.append(tomli_w.dumps({key: value}).strip() + (f"    # {note}" if note else ""))
            continue
        lines.append(f"# {tomli_w.dumps({key: value}).strip()}" + (f"    # {note}" if note else ""))
    return "\n".join(lines) + "\n"


def _inline(value) -> str:
    """A TOML value on one line (tables inline), so a commented field uncomments cleanly."""
    import tomli_w

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return tomli_w.dumps({"x": value}).split("=", 1)[1].strip()


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value
