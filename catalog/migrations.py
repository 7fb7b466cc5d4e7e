"""Schema migrations for the catalog (sqlite-utils Migrations; append, never edit, a migration)."""

from sqlite_utils.migrations import Migrations

migrations = Migrations("photobatch")


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
