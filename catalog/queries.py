"""Selections over the catalog, shared by ``catalog ls/export/stats``, ``rerun`` and ``export``.

A selection narrows files (where they are, when they were taken, which camera) and then the
latest run of each (file, recipe) pair (which recipe, which status, stale or failed). Freshness
("stale: recipe changed") needs the recipes and models in force now, which only the application
knows: callers pass them in as ``current``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from photobatch.catalog.culling import current_culling
from photobatch.catalog.store import NOT_A_TAKE, RUN_STATUSES
from photobatch.recipes.variations import is_variation_name

# What a (file, recipe) pair needs, judged against the recipe and model in force now.
STATE_UP_TO_DATE = "up to date"
STATE_RECIPE_CHANGED = "stale: recipe changed"
STATE_MODEL_CHANGED = "stale: model changed"
STATE_BASE_CHANGED = "stale: base model changed"  # a single file's model_config
STATE_ADAPTERS_CHANGED = "stale: adapters changed"
STATE_MASK_CHANGED = "stale: mask changed"
STATE_OUTPUT_MISSING = "output missing"
STATE_FAILED = "failed"
STATE_NEVER_RUN = "never run"
STATE_PENDING = "queued"  # queued or running: the daemon has it
STATE_SKIPPED = "skipped"
STATE_RECIPE_GONE = "recipe gone"
STATE_COMPARISON = "comparison"  # a variation `photobatch compare` made: no recipe file is it
STALE_STATES = (STATE_RECIPE_CHANGED, STATE_MODEL_CHANGED, STATE_BASE_CHANGED,
                STATE_ADAPTERS_CHANGED, STATE_MASK_CHANGED)

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")
_STAMP_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                  "%Y-%m-%d %H:%M:%S", "%Y:%m:%d", "%Y:%m:%d %H:%M:%S")


@dataclass(frozen=True)
class Current:
    """The recipe version, model and adapter files a recipe would run with now (None: unknown).

    ``model_hash`` and ``adapters_hash`` are the identities of the files (weights replaced under
    the same name), ``mask_sha256`` that of the mask painted beside the run's photo,
    ``model_config`` the base a single-file model reads its text encoders and VAE from; a run
    that recorded none is not judged by them.
    """

    fingerprint: str
    model_id: str | None = None
    model_hash: str | None = None
    adapters_hash: str | None = None
    mask_sha256: str | None = None
    model_config: str | None = None


@dataclass(frozen=True)
class Selection:
    """Which files and runs a command works on; empty fields do not filter.

    ``places`` (folders and files, absolute; sha256 prefixes; bare file names, matched in any
    folder) are a union: a file matches when it is any of them or under any of them. ``stale``, ``failed`` and ``statuses`` are a
    union too ("stale or failed"); every other field narrows further.
    """

    recipe: str | None = None
    stale: bool = False
    failed: bool = False
    statuses: tuple[str, ...] = ()
    since: str | None = None  # "YYYY-MM-DDTHH:MM:SS", compared with the photo's local time
    until: str | None = None
    camera: str | None = None
    places: tuple[str, ...] = ()
    rating: int | None = None  # at least this many stars (the photographer's, from XMP)
    labels: tuple[str, ...] = ()  # any of these colour labels
    keywords: tuple[str, ...] = ()  # any of these keywords

    @property
    def culls(self) -> bool:
        """True when the selection goes by the photographer's rating, labels or keywords."""
        return self.rating is not None or bool(self.labels) or bool(self.keywords)

    @property
    def narrows_runs(self) -> bool:
        """True when the selection asks for runs in some state (stale, failed, a status)."""
        return self.stale or self.failed or bool(self.statuses)

    @property
    def is_empty(self) -> bool:
        """True when nothing at all is selected on (everything matches)."""
        return not (self.recipe or self.narrows_runs or self.since or self.until
                    or self.camera or self.places or self.culls)


@dataclass
class PairRow:
    """A file with the latest run of one recipe on it (``run`` is None: never run with it)."""

    file: dict[str, Any]
    recipe: str
    run: dict[str, Any] | None = None
    state: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Where the original was last seen."""
        return Path(self.file["path"])

    def as_dict(self) -> dict[str, Any]:
        """Flat row for JSON/CSV: file fields, then the run's, then the state."""
        row = {"file_id": self.file["id"], "path": self.file["path"],
               "sha256": self.file["sha256"], "format": self.file.get("format"),
               "camera_make": self.file.get("camera_make"),
               "camera_model": self.file.get("camera_model"), "lens": self.file.get("lens"),
               "date_taken": self.file.get("date_taken"), "first_seen": self.file.get("first_seen"),
               "rating": self.file.get("rating"), "labels": self.file.get("labels"),
               "keywords": self.file.get("keywords"),
               "recipe": self.recipe}
        run = self.run or {}
        for key in ("id", "status", "recipe_fingerprint", "model_id", "seed", "attempts",
                    "output_path", "output_sha256", "error", "queued_at", "started_at",
                    "finished_at"):
            row["run_id" if key == "id" else key] = run.get(key)
        row["params"] = _json_or_none(run.get("params"))
        row["seconds"] = run_seconds(run)
        row["state"] = self.state or None
        return row


def parse_when(text: str, *, end: bool = False, now: datetime | None = None) -> str:
    """Normalise a --since/--until value to "YYYY-MM-DDTHH:MM:SS" (local wall-clock time).

    Takes a date (``2026-03-01``: the whole day for ``end``), a date and time, or an age such
    as ``36h``, ``7d`` or ``2w``. Raises ValueError with a one-line reason.
    """
    value = text.strip()
    rel = _RELATIVE.match(value)
    if rel:
        hours = int(rel.group(1)) * {"h": 1, "d": 24, "w": 168}[rel.group(2)]
        moment = (now or datetime.now()) - timedelta(hours=hours)
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    for fmt in _STAMP_FORMATS:
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if end and "%H" not in fmt:
            moment = moment.replace(hour=23, minute=59, second=59)
        elif end and "%S" not in fmt:
            moment = moment.replace(second=59)
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    raise ValueError(f"{text!r} is not a date: use 2026-03-01, '2026-03-01 18:30' or an age like 7d")


def select_files(db, selection: Selection, *, culling: bool = True,
                 replaced: bool = False) -> list[dict[str, Any]]:
    """File rows matching the selection's file filters (places, dates, camera, culling), by
    path. With ``culling`` each row's rating, labels and keywords are as the photo has them now
    (``row["culling"]``); without it they are read only when the selection goes by them.
    Earlier versions of a photo replaced at its path (see Catalog.versions) count only with
    ``replaced`` (history: their runs happened)."""
    where, args = _file_filters(selection)
    if not replaced:
        where.append("f.replaced_by IS NULL")
    sql = "SELECT * FROM files f" + (" WHERE " + " AND ".join(where) if where else "")
    rows = [dict(row) for row in db.query(sql + " ORDER BY f.path", args)]
    if not (culling or selection.culls):
        return rows
    # Ratings change after import (culling in Lightroom): read again where a sidecar changed.
    culling = current_culling(db, rows)
    for row in rows:
        now = row["culling"] = culling[row["id"]]
        row["rating"], row["labels"] = now.rating, ",".join(now.labels) or None
        row["keywords"] = list(now.keywords)
    if selection.culls:
        rows = [r for r in rows if culling[r["id"]].matches(selection.rating, selection.labels,
                                                             selection.keywords)]
    return rows


# (recipe name, its latest run or None) -> what it would run with now; None: the recipe is gone.
CurrentFor = Callable[[str, "dict[str, Any] | None"], "Current | None"]


def select_pairs(db, selection: Selection, current: CurrentFor | None = None,
                 *, include_unrun: bool = False,
                 left_out: Callable[[Path, set[str]], bool] | None = None) -> list[PairRow]:
    """(file, latest run per recipe) rows matching the selection, each with its state.

    ``current`` says what a recipe would run with now (the model may depend on the run's watch
    folder); without it, freshness is not judged. ``include_unrun`` adds (file,
    ``selection.recipe``) for selected files never run with that recipe (what ``rerun --recipe
    NAME`` means by "run it over these photos"), except those ``left_out`` says are the half
    of a RAW+JPEG pair that is not run, given the names of the selected files in its folder.
    """
    files = {row["id"]: row for row in select_files(db, selection)}
    if not files:
        return []
    runs = _latest_runs(db, selection.recipe)
    pairs = [PairRow(files[run["file_id"]], run["recipe"], run)
             for run in runs if run["file_id"] in files]
    if include_unrun and selection.recipe:
        seen = {p.file["id"] for p in pairs}
        names: dict[Path, set[str]] = {}
        for f in files.values():
            path = Path(f["path"])
            names.setdefault(path.parent, set()).add(path.name)
        pairs += [PairRow(f, selection.recipe) for fid, f in files.items() if fid not in seen
                  and not (left_out and left_out(Path(f["path"]),
                                                 names[Path(f["path"]).parent]))]
    for pair in pairs:
        pair.state = pair_state(pair, current)
    pairs = [p for p in pairs if _state_matches(p, selection)]
    pairs.sort(key=lambda p: (p.file["path"], p.recipe))
    return pairs


def select_files_without_runs(db, selection: Selection) -> list[dict[str, Any]]:
    """Selected files that have no run at all (listed by ``catalog ls`` as "not run")."""
    files = select_files(db, selection)
    with_runs = {row[0] for row in db.execute("SELECT DISTINCT file_id FROM runs").fetchall()}
    return [f for f in files if f["id"] not in with_runs]


def pair_state(pair: PairRow, current: CurrentFor | None) -> str:
    """What the pair needs now: one of the STATE_* values."""
    run = pair.run
    if run is None:
        return STATE_NEVER_RUN
    status = run["status"]
    if status in ("queued", "running"):
        return STATE_PENDING
    if status == "failed":
        return STATE_FAILED
    if status == "skipped":
        return STATE_SKIPPED
    now = current(pair.recipe, run) if current is not None else None
    if current is not None and now is None:
        return STATE_COMPARISON if is_variation_name(pair.recipe) else STATE_RECIPE_GONE
    if now is not None and run["recipe_fingerprint"] != now.fingerprint:
        return STATE_RECIPE_CHANGED
    if now is not None and now.model_id and run["model_id"] != now.model_id:
        return STATE_MODEL_CHANGED
    if now is not None and now.model_config and run.get("model_config") \
            and run["model_config"] != now.model_config:
        # The same file read with another base's encoders and VAE (said before the model
        # hash, which covers the base too, would say "model changed").
        return STATE_BASE_CHANGED
    if now is not None and now.model_hash and run.get("model_hash") \
            and run["model_hash"] != now.model_hash:
        return STATE_MODEL_CHANGED  # the same name, other weights
    if now is not None and now.adapters_hash and run.get("adapters_hash") \
            and run["adapters_hash"] != now.adapters_hash:
        return STATE_ADAPTERS_CHANGED
    if now is not None and now.mask_sha256 and run.get("mask_sha256") \
            and run["mask_sha256"] != now.mask_sha256:
        return STATE_MASK_CHANGED  # the mask beside the photo was repainted
    if not run.get("output_path") or not Path(run["output_path"]).exists():
        return STATE_OUTPUT_MISSING
    return STATE_UP_TO_DATE


def run_seconds(run: Mapping[str, Any] | None) -> float | None:
    """Processing seconds of a run: the sum of its timed stages (None when never timed)."""
    timings = _json_or_none((run or {}).get("timings"))
    if not timings:
        return None
    return round(sum(float(v) for v in timings.values()), 3)


def all_runs(db, selection: Selection) -> list[dict[str, Any]]:
    """Every run (history included) on the selected files, with its file's path, oldest first."""
    files = {row["id"]: row for row in select_files(db, selection, replaced=True)}
    where, args = ["1"], []
    if selection.recipe:
        where.append("recipe = ?")
        args.append(selection.recipe)
    if selection.statuses or selection.failed:
        statuses = set(selection.statuses) | ({"failed"} if selection.failed else set())
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        args += sorted(statuses)
    rows = []
    for run in db.query(f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY id", args):
        file = files.get(run["file_id"])
        if file is not None:
            rows.append(PairRow(file, run["recipe"], dict(run)).as_dict())
    return rows


def run_stats(db, selection: Selection) -> dict[str, Any]:
    """Counts by status and by recipe, processing time and throughput of the selected files' runs."""
    files = {row["id"] for row in select_files(db, selection, culling=False, replaced=True)}
    runs = [dict(r) for r in db.query("SELECT * FROM runs ORDER BY id")
            if r["file_id"] in files and (not selection.recipe or r["recipe"] == selection.recipe)]
    by_status = {s: 0 for s in RUN_STATUSES}
    by_recipe: dict[str, dict[str, int]] = {}
    stage_seconds: dict[str, float] = {}
    for run in runs:
        by_status[run["status"]] = by_status.get(run["status"], 0) + 1
        per = by_recipe.setdefault(run["recipe"], {s: 0 for s in RUN_STATUSES})
        per[run["status"]] = per.get(run["status"], 0) + 1
        for stage, seconds in (_json_or_none(run.get("timings")) or {}).items():
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + float(seconds)
    done = [r for r in runs if r["status"] == "done"]
    busy = sum(stage_seconds.values())
    span = _span_seconds(done)
    return {
        "files": len(files),
        "runs": len(runs),
        "by_status": by_status,
        "by_recipe": dict(sorted(by_recipe.items())),
        "processing_seconds": round(busy, 2),
        "stage_seconds": {k: round(v, 2) for k, v in sorted(stage_seconds.items())},
        "seconds_per_done_run": round(
            sum(run_seconds(r) or 0.0 for r in done) / len(done), 3) if done else None,
        "first_done": min((r["finished_at"] for r in done if r["finished_at"]), default=None),
        "last_done": max((r["finished_at"] for r in done if r["finished_at"]), default=None),
        # Wall-clock rate from the first start to the last finish: what a shoot really took.
        "done_per_hour": round(len(done) / (span / 3600), 1) if span else None,
    }


def _file_filters(selection: Selection) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if selection.places:
        alternatives = []
        for place in selection.places:
            if _looks_like_sha(place):
                alternatives.append("f.sha256 LIKE ?")
                args.append(place.lower() + "%")
            elif "/" not in place and "\\" not in place:
                # A bare file name: that photo in whichever folder it is (and was archived to).
                alternatives.append("(f.path = ? OR f.path LIKE ? ESCAPE '\\')")
                args += [place, "%/" + _like_escape(place)]
            else:
                # A folder selects what is under it; escape LIKE's wildcards in real paths.
                folder = place.rstrip("/") + "/"
                alternatives.append("(f.path = ? OR f.path LIKE ? ESCAPE '\\')")
                args += [place, _like_escape(folder) + "%"]
        where.append("(" + " OR ".join(alternatives) + ")")
    # The photo's own wall-clock time when it has one, else when it was imported.
    taken = "substr(COALESCE(f.date_taken, f.first_seen), 1, 19)"
    if selection.since:
        where.append(f"{taken} >= ?")
        args.append(selection.since)
    if selection.until:
        where.append(f"{taken} <= ?")
        args.append(selection.until)
    if selection.camera:
        where.append("(COALESCE(f.camera_make, '') || ' ' || COALESCE(f.camera_model, '')) "
                     "LIKE ? ESCAPE '\\'")
        args.append("%" + _like_escape(selection.camera) + "%")
    return where, args


def _latest_runs(db, recipe: str | None) -> list[dict[str, Any]]:
    # The latest run per (file, recipe), looking past "skipped" ones: a skip only says an
    # identical run was done already, and must not hide that run's output. Past takes too
    # (rerun --takes N): tries in files of their own, beside the photo's output.
    sql = """
        WITH latest AS (
            SELECT COALESCE(MAX(CASE WHEN status != 'skipped' AND {not_a_take} THEN id END),
                            MAX(CASE WHEN status != 'skipped' THEN id END), MAX(id)) AS run_id
            FROM runs {where} GROUP BY file_id, recipe)
        SELECT r.* FROM runs r JOIN latest l ON l.run_id = r.id
    """.format(where="WHERE recipe = ?" if recipe else "", not_a_take=NOT_A_TAKE)
    return [dict(row) for row in db.query(sql, [recipe] if recipe else [])]


def _state_matches(pair: PairRow, selection: Selection) -> bool:
    if not selection.narrows_runs:
        return True
    status = pair.run["status"] if pair.run else None
    return ((selection.stale and pair.state in STALE_STATES)
            or (selection.failed and status == "failed")
            or (status in selection.statuses))


def _span_seconds(done: Iterable[dict]) -> float:
    starts = [r["started_at"] for r in done if r.get("started_at")]
    ends = [r["finished_at"] for r in done if r.get("finished_at")]
    if not starts or not ends:
        return 0.0
    try:
        span = (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(min(starts)))
    except ValueError:
        return 0.0
    # Runs finish within the same second on fast hardware: count at least one second.
    return max(span.total_seconds(), 1.0)


def _looks_like_sha(text: str) -> bool:
    return len(text) >= 8 and "/" not in text and bool(re.fullmatch(r"[0-9a-fA-F]+", text))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json_or_none(text: Any) -> Any:
    if not text:
        return None
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None
