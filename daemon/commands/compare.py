"""``photobatch compare``: a recipe's variations on a photo or a few, side by side (A1111's X/Y
plot): one contact sheet per photo."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from photobatch.daemon.commands.common import Context, fail_on_usage_error

MAX_AXES = 2
_COLUMNS_ONE_AXIS = 4


@click.command()
@click.argument("photos", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recipe", "recipe_name", required=True, metavar="NAME", help="The recipe to vary.")
@click.option("--vary", "axes", multiple=True, required=True, metavar="FIELD=V1,V2,...",
              help="A field and the values to try (once or twice: rows, then columns), e.g. "
                   "strength=0.2,0.3,0.4 or sampler=Euler a,DDIM or ip_adapter.scale=0.4,0.8 "
                   "or loras.1.weight=0.4,0.8, or 'prompt/golden hour=golden hour,blue hour' "
                   "(A1111's Prompt S/R).")
@click.option("--model", help="A diffusers folder, a .safetensors or .gguf file or a hub id (default: "
                               "the recipe's, or PHOTOBATCH_MODEL).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("enhanced/compare"), show_default=True,
              help="Where the variations and the sheets go.")
@click.option("--size", "cell", type=click.IntRange(128, 2048), default=512, show_default=True,
              help="Longest side of each picture on a sheet (the variations are full size).")
@click.pass_obj
@fail_on_usage_error
def compare(obj: Context, photos, recipe_name, axes, model, out_dir, cell):
    """Run a recipe on a few photos at several values of one or two fields, each photo with its
    own seed throughout, and write each full-size result plus a captioned contact sheet per
    photo (exit 1 if any variation failed).

    Each variation is recorded in the catalog under the recipe's name with its values
    ("color-correct [strength=0.3]"); once one looks right, `photobatch recipes new NAME --from
    RECIPE --set strength=0.3` makes a recipe of it.
    """
    from photobatch.recipes.schema import RecipeError
    from photobatch.recipes.variations import combinations, parse_axis, show_value

    try:
        parsed = [parse_axis(text) for text in axes]
        if len(parsed) > MAX_AXES:
            raise ValueError(f"at most {MAX_AXES} fields can be varied at once (rows and columns)")
        combos = combinations(parsed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--vary") from None
    photos = list(dict.fromkeys(Path(p).resolve() for p in photos))
    stems = [p.stem.lower() for p in photos]
    if len(set(stems)) != len(stems):
        raise click.UsageError("two photos share a name: their variations would overwrite each "
                               "other's (compare them one at a time, each with its own --out)")
    app = obj.app(model)
    outcomes = []
    try:
        recipe = app.recipe(recipe_name)
        variants = _variants(app, recipe, combos)
        for _, variant in variants:
            app.check_runnable(variant, app.model_for(variant))
        for photo in photos:
            sheet, done = _compare(app, photo, recipe, parsed, variants, out_dir, cell)
            outcomes += done
            click.echo(f"sheet    {sheet}")
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        # As `run` does: the variation in the model's hands is recorded as interrupted.
        app.catalog.interrupt_runs()
        click.secho("interrupted: the sheets listed above are written; the variation being "
                    "made is recorded as interrupted", fg="yellow", err=True)
        sys.exit(130)
    finally:
        app.close()
    failed = [o for o in outcomes if o.status != "done"]
    click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} variations done")
    example = " ".join("--set " + shlex.quote(f"{axis.field}={show_value(axis.values[0])}")
                       for axis in parsed)
    click.echo(f"keep the one you like as a recipe: photobatch recipes new NAME --from "
               f"{shlex.quote(recipe_name)} {example} (with its values)")
    sys.exit(1 if failed else 0)


def _variants(app, recipe, combos):
    """(changes, checked recipe) for each combination, named and numbered for the catalog, each
    as it runs on its model (that family's table applied, but never over a varied field)."""
    import dataclasses

    from photobatch.recipes.variations import variation_name, vary

    variants = []
    for n, changes in enumerate(combos, start=1):
        variant = vary(recipe, changes, name=variation_name(recipe.name, changes))
        varied = {field.split(".")[0].split("/")[0] for field in changes}
        variant = app.for_model(variant.without_family_fields(varied),
                                variant.model or app.default_model)
        # Numbered files, overwritten by the next comparison: the sheet says what each is.
        variant = dataclasses.replace(variant, output=dataclasses.replace(
            variant.output, name="{stem}_" + _slug(recipe.name) + f"_v{n:02d}",
            collision="overwrite", subfolder=""))
        variants.append((changes, variant))
    return variants


def _compare(app, photo: Path, recipe, axes, variants, out_dir: Path, cell: int):
    from photobatch.catalog.hashing import file_sha256
    from photobatch.daemon.contact_sheet import Cell, contact_sheet
    from photobatch.daemon.session import Session
    from photobatch.plugins.colour import convert_to_space
    from photobatch.plugins.exporting import NoReader, decode_photo
    from photobatch.recipes.variations import variation_label

    try:
        original, icc = decode_photo(photo, list(app.readers), preview=False, checkerboard=True)
    except NoReader as exc:
        raise click.ClickException(str(exc)) from None
    original, _ = convert_to_space(original, icc, "srgb")
    # One seed for every variation (the recipe's for this photo), unless the seed is varied:
    # the pictures then differ only by what the axes change.
    seed = None
    if not any(axis.field == "seed" for axis in axes):
        # The recipe as it runs on its model: its fingerprint there derives the seed.
        runs_as = app.for_model(recipe, recipe.model or app.default_model)
        seed = _photo_seed(app, photo, runs_as, file_sha256(photo))
    session = Session(app, out_dir, force=True)
    cells, outcomes = [], []
    for changes, variant in variants:
        outcome = session.process(photo, variant, seed=seed)
        outcomes.append(outcome)
        label = variation_label(changes)
        if outcome.status == "done":
            click.echo(f"done     {photo.name} {label} -> {outcome.output} ({outcome.seconds:.1f} s)")
            image, out_icc = decode_photo(outcome.output, list(app.readers), preview=False,
                                          checkerboard=True)
            cells.append(Cell(convert_to_space(image, out_icc, "srgb")[0], label))
        else:
            click.secho(f"{outcome.status.upper():<8} {photo.name} {label}: {outcome.error}",
                        fg="red", err=True)
            cells.append(Cell(None, f"{label}: {outcome.status} ({outcome.error})"))
    columns = len(axes[1].values) if len(axes) > 1 else min(len(cells), _COLUMNS_ONE_AXIS)
    title = f"{photo.name} · {recipe.name} · seed {seed if seed is not None else 'varied'}"
    sheet = contact_sheet(original, cells, columns, size=cell, title=title)
    path = Path(out_dir) / f"{photo.stem}_{_slug(recipe.name)}_compare.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.image.save(path, "JPEG", quality=90, subsampling=0)
    return path, outcomes


def _photo_seed(app, photo: Path, recipe, sha: str) -> int:
    """The seed ``recipe`` runs ``photo`` with: one chosen for it (``rerun --seed``), the
    recipe's own, or the one derived from the photo and the recipe."""
    from photobatch.daemon.session import derive_seed

    known = app.catalog.file_by_sha(sha)
    chosen = app.catalog.chosen_seed(known["id"], recipe.name) if known else None
    if chosen is not None:
        return chosen
    return recipe.seed if recipe.seed is not None else derive_seed(sha, recipe.fingerprint)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
