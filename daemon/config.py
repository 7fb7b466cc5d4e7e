"""The daemon's configuration: a TOML file validated into frozen dataclasses.

Every error names the file and the key (``watch[1].quiet_seconds must be ...``), so a typo in a
config never passes silently.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from photobatch.daemon.archive import archive_root, archive_template_problem
from photobatch.daemon.pairs import DEFAULT_PAIRS, PAIR_CHOICES
from photobatch.recipes.suggest import did_you_mean
from photobatch.plugins.diffusion.device import PRECISIONS
from photobatch.plugins.builtin.notifications import NotifySettings
from photobatch.plugins.metadata.rights import Rights

POLLING_MODES = ("auto", "on", "off")
DEFAULT_IGNORE = (".*", "*.part", "*.partial", "*.tmp", "*.crdownload", "*~", "*.xmp", "*.mask.png")


class ConfigError(ValueError):
    """A configuration a user must fix; the message names the file and the key."""


@dataclass(frozen=True)
class ExportSpec:
    """A ``[[watch.export]]`` table: an exporter run over the folder's outputs each time the
    daemon has caught up (a live proofing gallery, a client's web-size folder)."""

    exporter: str
    out: Path
    # The exporter's options as its command takes them, by option name ("long_edge", "zip").
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """What it is called in `photobatch status`: the exporter and where it writes."""
        return f"{self.exporter} -> {self.out}"

    def describe(self) -> str:
        """One line for `watch --check` and the log."""
        import shlex

        settings = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {shlex.quote(str(v))}")
                            for k, v in self.options if v is not False)
        return f"export {self.name}" + (f" ({settings})" if settings else "")


@dataclass(frozen=True)
class WatchFolder:
    """One watched folder: its recipes (one output per recipe) and where outputs go."""

    path: Path
    recipes: tuple[str, ...]
    output: Path
    recursive: bool = True
    # Outputs keep the subfolders photos were dropped in (Inbox/shootA/IMG_1.JPG goes to
    # output/shootA/); false puts every output straight in the output folder.
    mirror_folders: bool = True
    polling: str = "auto"  # auto: native events, polling when they cannot start
    quiet_seconds: float = 5.0
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    model: str | None = None
    # Only photos rated at least this many stars (in camera, or in Lightroom/darktable through
    # the XMP sidecar; a photo rated up later is taken then). None: every photo.
    min_rating: int | None = None
    # RAW+JPEG pairs (IMG_0001.NEF beside IMG_0001.JPG): "raw" runs the RAW, "jpeg" the JPEG,
    # "both" each (see photobatch.daemon.pairs).
    pairs: str = DEFAULT_PAIRS
    # This folder's [copyright] (a second shooter's): the config's, with the fields it sets.
    rights: Rights | None = None
    # Move each photo done with every recipe here (a folder template, "{date}" etc.), as
    # Lightroom's Auto Import does: the folder stays an inbox. "": photos stay.
    archive: str = ""
    # Exports made again from this folder's outputs whenever the daemon has caught up.
    exports: tuple[ExportSpec, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything ``photobatch watch`` needs to know."""

    watch: tuple[WatchFolder, ...] = ()
    model: str | None = None
    device: str | None = None
    precision: str | None = None
    pairs: str = DEFAULT_PAIRS  # the watch folders' default, and `photobatch run`'s
    recipe_dirs: tuple[Path, ...] = ()
    plugins_dir: Path | None = None
    disabled_plugins: tuple[str, ...] = ()
    decode_workers: int = 2
    encode_workers: int = 2
    max_attempts: int = 3
    retry_delay_seconds: float = 60.0
    rescan_minutes: float = 10.0
    stop_timeout_seconds: float = 30.0
    # [copyright]: the photographer's rights, written into every output (metadata.rights).
    rights: Rights | None = None
    # [backups]: the daemon backs the catalog up this often (0: never), keeping this many.
    backup_every_days: float = 7.0
    backup_keep: int = 4
    # [notify]: where "shoot done" and "needs you" messages go (builtin.notifications).
    notify: NotifySettings | None = None
    source: str = ""

    def app_settings(self) -> dict:
        """What an App takes from the config, whichever command builds it (``run``, ``rerun
        --now``, ``export``, the daemon): device, precision, the copyright presets and where
        notifications go."""
        return {"device": self.device, "precision": self.precision, "rights": self.rights,
                "folder_rights": self.folder_rights(), "notifications": self.notify,
                "auto_exports": tuple((folder.output, spec) for folder in self.watch
                                      for spec in folder.exports)}

    def folder_rights(self) -> tuple[tuple[Path, Rights], ...]:
        """(folder, its copyright) for the watch folders with one of their own, the deepest first
        (a folder inside another is the more specific)."""
        own = [(folder.path.expanduser().resolve(), folder.rights) for folder in self.watch
               if folder.rights]
        return tuple(sorted(own, key=lambda pair: -len(pair[0].parts)))


def rights_for(path: Path, folder_rights, default: Rights | None) -> Rights | None:
    """The copyright preset for the photo at ``path``: that of the deepest of ``folder_rights``
    ((folder, Rights), resolved, deepest first) holding it, else ``default``."""
    if folder_rights:
        where = Path(path).expanduser().resolve()
        for folder, own in folder_rights:
            if where.is_relative_to(folder):
                return own
    return default


def default_config_path() -> Path:
    """PHOTOBATCH_CONFIG, else ``config.toml`` in the user config dir."""
    env = os.environ.get("PHOTOBATCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("photobatch")) / "config.toml"


def _path(value: str) -> Path:
    return Path(os.path.expandvars(value)).expanduser()


# Where a key that is read in one table only belongs, for one written in another: a
# `model = ...` at the top instead of in [defaults], or a top-level key written below a
# table header (TOML puts it in that table).
_HOMES = {
    **dict.fromkeys(("model", "device", "precision", "pairs"), "in [defaults]"),
    **dict.fromkeys(("recipe_dirs", "rescan_minutes", "stop_timeout_seconds"),
                     "at the top of the file, before any [table]"),
    **dict.fromkeys(("max_attempts", "delay_seconds"), "in [retries]"),
    **dict.fromkeys(("decode", "encode"), "in [workers]"),
    **dict.fromkeys(("dir", "disabled"), "in [plugins]"),
    **dict.fromkeys(("creator", "notice", "usage_terms", "replace"), "in [copyright]"),
    **dict.fromkeys(("command", "headers"), "in [notify]"),
    **dict.fromkeys(("every_days", "keep"), "in [backups]"),
    "url": "in [copyright] or [notify]",
    **dict.fromkeys(("path", "recipes", "output", "recursive", "mirror_folders", "polling",
                     "quiet_seconds", "ignore", "min_rating", "copyright", "archive", "export"),
                    "in a [[watch]] table"),
}


class _Reader:
    """Pops typed values out of a TOML table, naming the key on any problem."""

    def __init__(self, label: str, table: Any, where: str):
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: {where or 'the file'} must be a table, got {table!r}")
        self.label, self.table, self.where = label, dict(table), where
        self.asked: set[str] = set()  # every key read: what a mistyped one may have meant

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, types: tuple[type, ...], default: Any = None, check=None) -> Any:
        self.asked.add(name)
        if name not in self.table:
            return default
        value = self.table.pop(name)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"{self.label}: {self.key(name)} must be a {want}, got {value!r}")
        if check:
            problem = check(value)
            if problem:
                raise ConfigError(f"{self.label}: {self.key(name)} {problem}")
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.get(name, (list,), None)
        if value is None:
            return default
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.label}: {self.key(name)} must be a list of names, got {value!r}")
        return tuple(value)

    def done(self) -> None:
        if self.table:
            unknown = ", ".join(self.key(k) for k in sorted(self.table))
            hint = ""
            if len(self.table) == 1:
                key = next(iter(self.table))
                home = _HOMES.get(key)
                hint = did_you_mean(key, self.asked) or (f"; it belongs {home}" if home else "")
            elif all(_HOMES.get(k) for k in self.table):
                # Keys written below a table header they do not belong to: say where they go.
                homes = {_HOMES[k] for k in self.table}
                hint = (f"; they belong {homes.pop()}" if len(homes) == 1 else
                        "; " + ", ".join(f"{k} belongs {_HOMES[k]}" for k in sorted(self.table)))
            raise ConfigError(f"{self.label}: unknown key {unknown}{hint}")


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value!r}"


def _at_least(lo: int):
    return lambda v: None if v >= lo else f"must be at least {lo}, got {v!r}"


def _device_name(value: str):
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return f'must be "auto", "cpu", "cuda", "cuda:N" or "mps", got {value!r}'


def _precision_name(value: str):
    if value in PRECISIONS:
        return None
    return f'must be "auto", "fp32", "bf16" or "fp16", got {value!r}'


def _headers(value: dict):
    for name, text in value.items():
        if not re.fullmatch(r"[A-Za-z0-9-]+", name) or not isinstance(text, str) or "\n" in text:
            return f"must map header names to one-line texts, got {name!r} = {text!r}"
    return None


def _http_url(value: str):
    if re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        return None
    return f"must be an http:// or https:// address, got {value!r}"


def _one_line(value: str):
    if "\n" in value or len(value) > 2000:
        return "must be one line of at most 2000 characters"
    return None


def _pair_choice(value: str):
    if value in PAIR_CHOICES:
        return None
    return f"must be one of {', '.join(repr(c) for c in PAIR_CHOICES)}; got {value!r}"


def parse_config(data: dict, source: str = "") -> Config:
    """Validate parsed TOML into a Config; raise ConfigError naming the key."""
    label = f"config {source}" if source else "config"
    top = _Reader(label, data, "")
    defaults = _Reader(label, top.get("defaults", (dict,), {}), "defaults")
    model = defaults.get("model", (str,))
    device = defaults.get("device", (str,), None, _device_name)
    precision = defaults.get("precision", (str,), None, _precision_name)
    pairs = defaults.get("pairs", (str,), DEFAULT_PAIRS, _pair_choice)
    defaults.done()
    workers = _Reader(label, top.get("workers", (dict,), {}), "workers")
    decode = workers.get("decode", (int,), 2, _at_least(1))
    encode = workers.get("encode", (int,), 2, _at_least(1))
    workers.done()
    plugins = _Reader(label, top.get("plugins", (dict,), {}), "plugins")
    plugins_dir = plugins.get("dir", (str,))
    disabled = plugins.strings("disabled")
    plugins.done()
    retries = _Reader(label, top.get("retries", (dict,), {}), "retries")
    max_attempts = retries.get("max_attempts", (int,), 3, _at_least(1))
    retry_delay = float(retries.get("delay_seconds", (int, float), 60.0, lambda v: None if v >= 0
                                    else f"must be 0 or more, got {v!r}"))
    retries.done()
    rights = _read_rights(label, top.get("copyright", (dict,), {}), "copyright", Rights())
    backups = _Reader(label, top.get("backups", (dict,), {}), "backups")
    backup_every = float(backups.get("every_days", (int, float), 7.0, lambda v: None if v >= 0
                                     else f"must be 0 (never) or more, got {v!r}"))
    backup_keep = backups.get("keep", (int,), 4, _at_least(1))
    backups.done()
    notify_table = _Reader(label, top.get("notify", (dict,), {}), "notify")
    notify = NotifySettings(url=notify_table.get("url", (str,), "", _http_url),
                            command=notify_table.strings("command"),
                            headers=tuple(notify_table.get("headers", (dict,), {}, _headers).items()))
    notify_table.done()
    recipe_dirs = tuple(_path(p) for p in top.strings("recipe_dirs"))
    rescan = float(top.get("rescan_minutes", (int, float), 10.0, _positive))
    stop_timeout = float(top.get("stop_timeout_seconds", (int, float), 30.0, _positive))
    raw_watch = top.get("watch", (list,), [])
    top.done()
    folders = tuple(_parse_watch(label, i, item, pairs, rights) for i, item in enumerate(raw_watch))
    for i, folder in enumerate(folders):
        for n, spec in enumerate(folder.exports):
            inside = next((f.path for f in folders
                           if spec.out.resolve().is_relative_to(f.path.resolve())), None)
            if inside is not None:
                raise ConfigError(f"{label}: watch[{i}].export[{n}].out {spec.out} is inside the "
                                  f"watched folder {inside}: the daemon would take the exported "
                                  "files for new photos")
    return Config(
        watch=folders, model=model, device=device, precision=precision, pairs=pairs,
        recipe_dirs=recipe_dirs,
        plugins_dir=_path(plugins_dir) if plugins_dir else None, disabled_plugins=disabled,
        decode_workers=decode, encode_workers=encode, max_attempts=max_attempts,
        retry_delay_seconds=retry_delay, rescan_minutes=rescan,
        stop_timeout_seconds=stop_timeout, rights=rights or None, notify=notify or None,
        backup_every_days=backup_every, backup_keep=backup_keep,
        source=source,
    )


def _read_rights(label: str, table: Any, where: str, base: Rights) -> Rights:
    """A [copyright] table: the fields it sets over ``base``'s."""
    reader = _Reader(label, table, where)
    fields = {name: reader.get(name, (str,), getattr(base, name), _one_line)
              for name in ("creator", "notice", "usage_terms", "url")}
    rights = Rights(**fields, replace=reader.get("replace", (bool,), base.replace))
    reader.done()
    return rights


def _folder_rights(label: str, index: int, table: dict | None, rights: Rights) -> Rights | None:
    """A folder's own ``copyright = {...}`` over the config's (None: it has none)."""
    if table is None:
        return None
    return _read_rights(label, table, f"watch[{index}].copyright", rights) or None


def _parse_watch(label: str, index: int, item: Any, pairs: str, rights: Rights) -> WatchFolder:
    table = _Reader(label, item, f"watch[{index}]")
    path = table.get("path", (str,))
    if not path:
        raise ConfigError(f"{label}: watch[{index}].path is missing")
    recipes = table.strings("recipes")
    if not recipes:
        raise ConfigError(f"{label}: watch[{index}].recipes must name at least one recipe")
    output = table.get("output", (str,))
    if not output:
        raise ConfigError(f"{label}: watch[{index}].output is missing (where outputs go)")
    folder = WatchFolder(
        path=_path(path), recipes=recipes, output=_path(output),
        recursive=table.get("recursive", (bool,), True),
        mirror_folders=table.get("mirror_folders", (bool,), True),
        polling=table.get("polling", (str,), "auto",
                          lambda v: None if v in POLLING_MODES else
                          f"must be one of {', '.join(POLLING_MODES)}; got {v!r}"),
        quiet_seconds=float(table.get("quiet_seconds", (int, float), 5.0,
                                      lambda v: None if v >= 0 else f"must be 0 or more, got {v!r}")),
        ignore=DEFAULT_IGNORE + table.strings("ignore"),
        model=table.get("model", (str,)),
        min_rating=table.get("min_rating", (int,), None,
                             lambda v: None if 0 <= v <= 5 else f"must be 0 to 5 stars, got {v!r}"),
        pairs=table.get("pairs", (str,), pairs, _pair_choice),
        rights=_folder_rights(label, index, table.get("copyright", (dict,)), rights),
        archive=table.get("archive", (str,), "", archive_template_problem),
        exports=_parse_exports(label, index, table.get("export", (list,), [])),
    )
    table.done()
    if folder.path.resolve() == folder.output.resolve():
        raise ConfigError(f"{label}: watch[{index}].output must not be the watched folder itself")
    if folder.archive:
        root = archive_root(folder.archive).resolve()
        if root.is_relative_to(folder.path.resolve()) or root.is_relative_to(folder.output.resolve()):
            raise ConfigError(f"{label}: watch[{index}].archive must be outside the watched "
                              f"folder and the output folder, got {folder.archive!r}")
    return folder


def _parse_exports(label: str, index: int, items: list) -> tuple[ExportSpec, ...]:
    """The ``[[watch.export]]`` tables of watch folder ``index``: which exporter, where, and its
    options (checked against the exporter when the daemon starts: plugins add exporters)."""
    specs = []
    for n, item in enumerate(items):
        where = f"watch[{index}].export[{n}]"
        table = _Reader(label, item, where)
        exporter = table.get("exporter", (str,))
        out = table.get("out", (str,))
        if not exporter or not out:
            raise ConfigError(f"{label}: {where} needs exporter (e.g. \"gallery\", \"files\") "
                              "and out (the folder it writes)")
        options = []
        for key, value in sorted(table.table.items()):
            if not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"{label}: {where}.{key} must be a value as the command line "
                                  f"takes it, got {value!r}")
            options.append((key.replace("-", "_"), value))
        specs.append(ExportSpec(exporter=exporter, out=_path(out), options=tuple(options)))
    return tuple(specs)


def load_config(path: Path | None = None) -> Config:
    """Read and validate the config file (the default location when ``path`` is None)."""
    path = Path(path) if path else default_config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no config at {path}: run `photobatch init` to write an example") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML ({exc})") from None
    return parse_config(data, source=str(path))


def load_optional_config(path: Path | None) -> Config:
    """The config named by ``path`` (which must exist), else the default one if there is one."""
    if path is not None:
        return load_config(path)
    default = default_config_path()
    return load_config(default) if default.is_file() else Config()


EXAMPLE_CONFIG = '''\
# photobatch configuration. Paths may use ~ and $VARS.
# `photobatch watch` processes every photo dropped into a [[watch]] folder with each of its recipes.

# These few come before any [table] (TOML puts a key after a table header inside that table):
# recipe_dirs = ["~/photobatch-recipes"]   # your own recipe *.toml folders
# rescan_minutes = 10                      # catch-up scan of every folder this often
# stop_timeout_seconds = 30                # on SIGTERM, in-flight work gets this long to finish

[defaults]
# The model recipes run on unless a recipe or a watch folder names its own:
# a local diffusers folder, a single-file .safetensors checkpoint, or a Hugging Face hub id.
model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
# device = "cuda"        # "auto" (default: cuda, then mps, then cpu), "cpu", "cuda:1", "mps"
# precision = "fp32"     # "auto" (default: bf16/fp16 on GPUs, bf16 on CPUs with native bf16,
#                        # else fp32), "fp32", "bf16", "fp16"; a seed repeats a run in its precision
# pairs = "raw"          # RAW+JPEG pairs (IMG_0001.NEF beside IMG_0001.JPG): run the RAW ("raw",
#                        # the default), the camera's JPEG ("jpeg"), or each file ("both")

[[watch]]
path = "~/Pictures/Inbox"                  # the folder photographers drop shoots into
recipes = ["color-correct"]                # one output per recipe
output = "~/Pictures/Enhanced"             # outputs go here (never next to the originals)
# recursive = true                         # include subfolders
# mirror_folders = true                    # outputs keep those subfolders (Inbox/shootA/x.jpg
#                                          # -> Enhanced/shootA/); false: all in output itself
# polling = "auto"                         # "on" for network shares where inotify is silent
# quiet_seconds = 5                        # a file is ready once unchanged this long (or closed)
# ignore = ["*_proof.jpg"]                 # extra names to skip (temp names are always skipped)
# model = "/models/sdxl"                   # this folder's own model
# min_rating = 3                           # only photos rated 3+ stars (in camera, or later in
#                                          # Lightroom/darktable: rated up, a photo is taken then)
# pairs = "both"                           # this folder's RAW+JPEG pairs (default: [defaults])
# copyright = { creator = "Bob Second" }   # a second shooter's folder: [copyright] with these
# archive = "~/Pictures/Originals/{year}/{date}"   # move each photo here once done (Lightroom's
#                                          # Auto Import): the folder stays an inbox; tokens
#                                          # {date} {year} {month} {day} {camera} {folder}

# [[watch.export]]                         # made again from this folder's outputs each time
# exporter = "files"                       # the daemon has caught up (`photobatch export
# out = "~/Delivery/web"                   # files --help`): the client's web-size copies
# long_edge = 2048
# sharpen = "screen"
# [[watch.export]]
# exporter = "gallery"                     # a proofing gallery for the studio's screen
# out = "~/Sites/proofs"
# watermark = "© Jane Doe"

# [workers]                                # (on a GPU; on the CPU every stage takes its turn)
# decode = 2                               # threads decoding and preparing photos
# encode = 2                               # threads encoding outputs and writing metadata

# [retries]
# max_attempts = 3                         # a run failing for a passing reason is tried this
#                                          # many times (an unreadable file: once)
# delay_seconds = 60                       # ... waiting this long between tries

# [copyright]                              # written into every output, as a Lightroom metadata
#                                          # preset (EXIF, XMP and IPTC), where the camera left
#                                          # it empty
# creator = "Jane Doe"
# notice = "© {year} Jane Doe, all rights reserved"   # {year}: the year the photo was taken
# usage_terms = "No use without a licence: jane@example.com"
# url = "https://janedoe.example/licensing"
# replace = false                          # true: over what the camera wrote, too

# [backups]                                # the daemon's own copies of the catalog (beside it,
#                                          # in backups/; see `photobatch catalog backups`)
# every_days = 7                           # 0: never (before an upgrade one is taken anyway)
# keep = 4

# [notify]                                 # when a shoot is done, or an output disk is full
# url = "https://ntfy.sh/my-studio-shoots" # POST the message (ntfy takes it as it is)
# headers = { Authorization = "Bearer tk_..." }   # a self-hosted ntfy's access token, Priority...
# command = ["notify-send", "{title}", "{text}"]   # and/or run this

# [plugins]
# dir = "~/.config/photobatch/plugins"     # drop-in plugin *.py files
# disabled = ["some-plugin"]
'''
