"""Schema migrations for the catalog (sqlite-utils Migrations; append, never edit, a migration)."""

import functools

from sqlite_utils.migrations import Migrations

migrations = Migrations("photobatch")


def unknown_migrations(applied) -> list[str]:
    """The names in ``applied`` (the migrations a catalog has) that this version does not know:
    a newer photobatch upgraded it."""
    known = _known_migrations()
    return [name for name in applied if name not in known]


@functools.lru_cache(maxsize=1)
def _known_migrations() -> frozenset[str]:
    import sqlite_utils

    # What pending() lists for an empty database is every migration this version has.
    return frozenset(m.name for m in migrations.pending(sqlite_utils.Database(memory=True)))


@migrations()
def m001_files_and_runs(db):
    """Files by content hash, and one row per recipe run on a file."""
    db["files"].create(
        {
            "id": int,
            "sha256": str,
            "path": str,
            "size": int,
            "mtime": float,
            "format": str,
            "width": int,
            "height": int,
            "camera_make": str,
            "camera_model": str,
            "lens": str,
            "date_taken": str,
            "exif": str,  # JSON summary
            "first_seen": str,
            "last_seen": str,
        },
        pk="id",
        not_null={"sha256", "path"},
    )
    db["files"].create_index(["sha256"], unique=True)
    db["files"].create_index(["path"])
    db["runs"].create(
        {
            "id": int,
            "file_id": int,
            "recipe": str,
            "recipe_fingerprint": str,
            "params": str,  # JSON
            "seed": int,
            "model_id": str,
            "model_hash": str,
            "runner": str,
            "device": str,
            "status": str,  # queued | running | done | failed | skipped
            "attempts": int,
            "error": str,
            "timings": str,  # JSON: seconds per stage
            "output_path": str,
            "output_sha256": str,
            "queued_at": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("file_id", "files", "id")],
        not_null={"file_id", "recipe", "recipe_fingerprint", "status"},
        defaults={"status": "queued", "attempts": 0},
    )
    db["runs"].create_index(["file_id", "recipe_fingerprint", "model_id"])
    db["runs"].create_index(["status"])


@migrations()
def m002_queue_and_daemon_state(db):
    """The runs table doubles as the daemon's queue; the daemon reports its state in one row."""
    db["runs"].add_column("output_dir", str)  # where the output goes (the watch folder's)
    db["runs"].add_column("available_at", str)  # a retry waits until then
    db["runs"].add_column("worker", str)  # "pid@host" of the process that claimed it
    db["runs"].create_index(["status", "available_at"])
    db["daemon_state"].create(
        {
            "id": int,
            "pid": int,
            "host": str,
            "started_at": str,
            "heartbeat_at": str,
            "state": str,  # starting | running | stopping | stopped
            "current": str,  # JSON list of files being worked on
            "folders": str,  # JSON list of watched folders
        },
        pk="id",
    )


@migrations()
def m003_plugin_errors(db):
    """Plugin listeners that raised: recorded so a photographer can see why a plugin did nothing."""
    db["plugin_errors"].create(
        {
            "id": int,
            "at": str,
            "plugin": str,
            "hook": str,
            "error": str,  # one line: "ValueError: reason"
            "traceback": str,
            "run_id": int,  # the run the event was about, when there was one
        },
        pk="id",
        not_null={"plugin", "hook", "error"},
    )
    db["plugin_errors"].create_index(["at"])


@migrations()
def m004_forced_reruns(db):
    """A run queued by ``photobatch rerun`` is redone even when an identical run is done already."""
    db["runs"].add_column("force", int, not_null_default=0)


@migrations()
def m005_run_precision(db):
    """The dtype a run's model computed in ("fp32", "bf16", "fp16"): a seed reproduces a run
    exactly only in the same precision."""
    db["runs"].add_column("precision", str)


@migrations()
def m006_run_adapters_hash(db):
    """The identity of the LoRA/embedding/VAE/ControlNet/IP-Adapter files a run read: a file
    replaced under the same name makes its outputs stale."""
    db["runs"].add_column("adapters_hash", str)


@migrations()
def m007_run_working_size(db):
    """The size the model worked at ("624x416"; for tiled runs, the tile's), A1111's "Size": it
    depends on the photo, the recipe and the model family, and a seed repeats a run only at it."""
    db["runs"].add_column("working_size", str)


@migrations()
def m008_run_seed_source(db):
    """Where a run's seed came from: "derived" (from the photo and the recipe), "recipe" (the
    recipe fixes one) or "chosen" (picked for this photo by ``rerun --seed``; later runs of the
    photo with that recipe keep it until ``--seed recipe``)."""
    db["runs"].add_column("seed_source", str)


@migrations()
def m009_run_prompt(db):
    """The prompt as a run used it, when a caption filled in the recipe's ``{caption}``: each
    photo's differs, and the recipe alone does not say it."""
    db["runs"].add_column("prompt", str)


@migrations()
def m010_run_mask_sha256(db):
    """The sha256 of the mask painted beside the photo that a run read (``mask = "sidecar"``):
    a repainted mask makes the output stale."""
    db["runs"].add_column("mask_sha256", str)


@migrations()
def m011_file_culling(db):
    """The photographer's star rating, colour labels and keywords (JSON list) as last read from
    the photo's XMP sidecar or its own XMP, and the sidecars' stamp (name, mtime, size) they
    were read at."""
    db["files"].add_column("rating", int)
    db["files"].add_column("labels", str)
    db["files"].add_column("keywords", str)
    db["files"].add_column("culling_stamp", str)


@migrations()
def m012_run_model_config(db):
    """The base model a single file ran with (the recipe's model_config, or
    PHOTOBATCH_MODEL_CONFIG's): its text encoders and VAE made the picture with the file's
    weights, and the recipe alone does not say which it was when the environment chose it."""
    db["runs"].add_column("model_config", str)


@migrations()
def m013_file_replaced_by(db):
    """The file that took this one's place: the same photo exported again over itself (same
    path, capture time and camera), or a file that never gave an output, at a path that now
    holds other content. Its content is gone; its outputs were the photo's earlier ones."""
    db["files"].add_column("replaced_by", int)
    db["files"].create_index(["replaced_by"])
    # What each path holds now: the row seen there last.
    for (file_id,) in db.execute(
            "SELECT f.id FROM files f WHERE EXISTS (SELECT 1 FROM files g WHERE g.path = f.path "
            f"AND g.id != f.id) AND NOT EXISTS ({SEEN_THERE_LATER})").fetchall():
        mark_earlier_versions(db, file_id)


@migrations()
def m014_exports(db):
    """The last time each of the daemon's exports ([[watch.export]]) ran, and how it went:
    what `photobatch status` shows."""
    db["exports"].create({"name": str, "finished_at": str, "result": str, "error": str},
                         pk="name")


# Another file row ``g`` seen at file row ``f``'s path after ``f`` (to the second, then by id).
SEEN_THERE_LATER = ("SELECT 1 FROM files g WHERE g.path = f.path AND (g.last_seen > f.last_seen "
                    "OR (g.last_seen = f.last_seen AND g.id > f.id))")


def mark_earlier_versions(db, file_id: int) -> list[int]:
    """Mark the rows that ``file_id`` replaced at its path (see m013) and return their ids."""
    # Earlier content of this path: the same photo when taken at the same moment by the same
    # camera (a name reused by another card is another photo, whose outputs stay its own), or
    # content that never made an output (nothing of it to keep apart).
    ids = [row[0] for row in db.execute(
        "SELECT o.id FROM files o JOIN files n ON n.id = ? "
        "WHERE o.path = n.path AND o.id != n.id AND o.replaced_by IS NOT n.id "
        "AND ((n.date_taken IS NOT NULL AND o.date_taken = n.date_taken "
        "      AND COALESCE(o.camera_model, '') = COALESCE(n.camera_model, '')) "
        "     OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.file_id = o.id AND r.status = 'done'))",
        [file_id]).fetchall()]
    if ids:
        marks = ",".join("?" * len(ids))
        db.execute(f"UPDATE files SET replaced_by = ? WHERE id IN ({marks})", [file_id, *ids])
    return ids
