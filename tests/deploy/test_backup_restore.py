"""scripts/backup.sh and scripts/restore.sh on real PostgreSQL and the real S3 server, with a real app data set."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from minio import Minio

from app.db import database, make_database, upgrade
from app.factory import create_app
from app.models import ALL_MODELS, Dataset
from app.settings import PROJECT_ROOT
from scripts.objects import REFERENCES
from tests.support.accounts import PASSWORD, login
from tests.support.data import as_jsonl, examples
from tests.support.database import admin_execute, truncate_all_tables
from tests.support.factories import make_event, make_job
from tests.support.settings import make_settings, settings_env

DAY = 24 * 3600
BACKUP_FILES = {"objects.tar", "database.dump", "objects-late.tar", "objects.sha256", "referenced.keys",
                "backup.info", "manifest.sha256"}
HOOK = f"{sys.executable} -m tests.deploy.backup_hook"


@pytest.fixture
def source(tmp_path, empty_postgres_database, redis_url, redis, seaweed):
    """Settings of a Studio on its own migrated database and bucket, with its app built and bound."""
    db = make_database(empty_postgres_database)
    upgrade(db)
    db.close_all()
    settings = make_settings(tmp_path, empty_postgres_database, redis_url, minio_endpoint=seaweed.endpoint,
                             minio_user=seaweed.access_key, minio_password=seaweed.secret_key,
                             minio_bucket=f"b-{uuid.uuid4().hex[:20]}", rate_limits_enabled=False)
    yield settings
    if database.obj is not None:
        database.obj.close_all()


def s3(settings) -> Minio:
    """A client of the settings' S3 server."""
    return Minio(settings.minio_endpoint, settings.minio_user, settings.minio_password, secure=False)


def fill_with_a_studio(settings) -> str:
    """Users, tokens, datasets (uploaded through the API, so their objects are real), jobs and events."""
    from app.auth import service as auth_service

    app = create_app(settings)
    app.config.update(TESTING=True)
    with app.app_context(), database.connection_context():
        owner = auth_service.create_user("owner@example.com", PASSWORD, is_admin=True)
        auth_service.create_user("other@example.com", PASSWORD)
        token = auth_service.create_token(owner, "backup test")[1]
    client = app.test_client()
    for index, kind in enumerate(("chat", "instruction", "text")):
        form = {"file": (io.BytesIO(as_jsonl(examples(kind, 20 + index))), f"{kind}.jsonl")}
        response = client.post("/api/v1/datasets", headers={"Authorization": f"Bearer {token}"}, data=form,
                               content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
    with app.app_context(), database.connection_context():
        # On an uploaded dataset: every row of the Studio points to objects that exist.
        job = make_job(owner, Dataset.get(Dataset.name == "text"), status="succeeded")
        for step in range(5):
            make_event(job, kind="metric", message=f"step {step}", data={"step": step, "loss": 1.0 / (step + 1)})
    database.obj.close_all()
    return token


def row_counts(settings) -> dict[str, int]:
    """Rows in each of the Studio's tables, plus its migration record."""
    db = make_database(settings.resolved_database_url)
    with db.connection_context():
        counts = {model._meta.table_name: model.select().bind(db).count() for model in ALL_MODELS}
        counts["schema_migration"] = db.execute_sql("SELECT count(*) FROM schema_migration").fetchone()[0]
    db.close_all()
    return counts


def object_checksums(settings) -> dict[str, str]:
    """SHA-256 of every object in the settings' bucket."""
    client = s3(settings)
    if not client.bucket_exists(settings.minio_bucket):
        return {}
    checksums = {}
    for found in client.list_objects(settings.minio_bucket, recursive=True):
        response = client.get_object(settings.minio_bucket, found.object_name)
        try:
            checksums[found.object_name] = hashlib.sha256(response.read()).hexdigest()
        finally:
            response.close()
            response.release_conn()
    return checksums


def wipe(settings) -> None:
    """Lose everything: drop and recreate the database empty, delete every object and the bucket."""
    database_name = settings.resolved_database_url.rsplit("/", 1)[1]
    admin_execute(f'DROP DATABASE "{database_name}" WITH (FORCE)')
    admin_execute(f'CREATE DATABASE "{database_name}"')
    client = s3(settings)
    for found in client.list_objects(settings.minio_bucket, recursive=True):
        client.remove_object(settings.minio_bucket, found.object_name)
    client.remove_bucket(settings.minio_bucket)


def script(name: str, settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run scripts/NAME in direct mode with the settings in its environment, under a permissive umask."""
    env = settings_env(settings) | {"PYTHON": sys.executable, "PYTHONPATH": str(PROJECT_ROOT), **env}
    return subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / name), *args], env=env, capture_output=True,
                          text=True, timeout=180, preexec_fn=lambda: os.umask(0o022))


def test_backup_then_wipe_then_restore_gives_back_every_row_and_object(source, tmp_path):
    token = fill_with_a_studio(source)
    rows, objects = row_counts(source), object_checksums(source)
    assert rows["dataset"] == 3 and rows["job_event"] == 5 and len(objects) >= 3, rows

    backed_up = script("backup.sh", source, "--dest", str(tmp_path / "backups"))
    assert backed_up.returncode == 0, backed_up.stderr
    (folder,) = (tmp_path / "backups").iterdir()
    assert {path.name for path in folder.iterdir()} == BACKUP_FILES
    manifest = dict(reversed(line.split("  ", 1)) for line in (folder / "objects.sha256").read_text().splitlines())
    assert manifest == objects

    wipe(source)
    assert object_checksums(source) == {}
    restored = script("restore.sh", source, str(folder))
    assert restored.returncode == 0, restored.stderr
    assert row_counts(source) == rows
    assert object_checksums(source) == objects
    assert_the_studio_works(source, token)


def assert_the_studio_works(settings, token: str) -> None:
    """The restored Studio logs its user in, knows the token, and serves the datasets' objects."""
    app = create_app(settings)
    app.config.update(TESTING=True)
    client = app.test_client()
    assert login(client, "owner@example.com").status_code == 302
    headers = {"Authorization": f"Bearer {token}"}
    datasets = client.get("/api/v1/datasets", headers=headers).get_json()["data"]
    uploaded = [dataset for dataset in datasets if dataset["file_format"] == "jsonl"]
    assert len(datasets) == len(uploaded) == 3
    for dataset in uploaded:
        preview = client.get(f"/api/v1/datasets/{dataset['id']}/preview?limit=100", headers=headers).get_json()
        assert len(preview["data"]) == dataset["example_count"]
    truncate_all_tables()


def test_restore_refuses_a_database_or_bucket_that_holds_data_and_touches_neither(source, tmp_path):
    fill_with_a_studio(source)
    assert script("backup.sh", source, "--dest", str(tmp_path / "backups")).returncode == 0
    (folder,) = (tmp_path / "backups").iterdir()
    rows, objects = row_counts(source), object_checksums(source)

    refused = script("restore.sh", source, str(folder))
    assert refused.returncode != 0 and "already holds" in refused.stderr
    assert row_counts(source) == rows and object_checksums(source) == objects

    # An empty database but a bucket with objects: still refused, and the database stays empty.
    database_name = source.resolved_database_url.rsplit("/", 1)[1]
    admin_execute(f'DROP DATABASE "{database_name}" WITH (FORCE)')
    admin_execute(f'CREATE DATABASE "{database_name}"')
    refused = script("restore.sh", source, str(folder))
    assert refused.returncode != 0 and "bucket" in refused.stderr
    assert table_count(source) == 0

    forced = script("restore.sh", source, "--force", str(folder))
    assert forced.returncode == 0, forced.stderr
    assert row_counts(source) == rows and object_checksums(source) == objects


def table_count(settings) -> int:
    """Tables in the public schema."""
    db = make_database(settings.resolved_database_url)
    with db.connection_context():
        count = db.execute_sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    db.close_all()
    return count


def test_an_object_changed_in_the_backup_fails_the_restore(source, tmp_path):
    fill_with_a_studio(source)
    assert script("backup.sh", source, "--dest", str(tmp_path / "backups")).returncode == 0
    (folder,) = (tmp_path / "backups").iterdir()
    tamper_with_first_object(folder / "objects.tar")
    reseal(folder)  # even with a manifest rewritten to match, each object's own checksum gives it away
    wipe(source)
    restored = script("restore.sh", source, str(folder))
    assert restored.returncode != 0 and "checksum differs" in restored.stderr


def tamper_with_first_object(archive: Path) -> None:
    """Rewrite the tar with one byte of its first object flipped (same size, same manifest)."""
    with tarfile.open(archive) as tar:
        members = [(member, tar.extractfile(member).read() if member.isfile() else None) for member in tar]
    first = next(index for index, (member, _) in enumerate(members) if member.name.startswith("objects/"))
    member, content = members[first]
    members[first] = (member, bytes([content[0] ^ 1]) + content[1:])
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, content in members:
            tar.addfile(member, io.BytesIO(content) if content is not None else None)


def test_old_backups_are_pruned_by_count_and_by_age(source, tmp_path):
    backups = tmp_path / "backups"
    names = [f"2000010{day}T000000Z" for day in range(1, 5)]
    for name in names:
        (backups / name).mkdir(parents=True)
    forty_days_ago = time.time() - 40 * DAY
    os.utime(backups / names[2], (forty_days_ago, forty_days_ago))
    (backups / ".partial-stale").mkdir()
    os.utime(backups / ".partial-stale", (time.time() - 2 * DAY,) * 2)
    result = script("backup.sh", source, "--dest", str(backups), "--keep", "3", "--max-age-days", "30")
    assert result.returncode == 0, result.stderr
    left = sorted(path.name for path in backups.iterdir())
    # Kept: the new backup and the newest old one; the two oldest are beyond the count, the third too old.
    assert len(left) == 2 and left[0] == names[3] and left[1] > names[3]


def one_backup(settings, tmp_path, **env: str) -> Path:
    """Back up into tmp_path/backups; the backup's folder."""
    result = script("backup.sh", settings, "--dest", str(tmp_path / "backups"), **env)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "backups").iterdir()
    return folder


def dangling_references(settings) -> list[str]:
    """Object keys that rows point to but the bucket lacks."""
    db = make_database(settings.resolved_database_url)
    with db.connection_context():
        keys = [key for (key,) in db.execute_sql(
            "SELECT object_key FROM dataset UNION SELECT normalized_key FROM dataset UNION "
            "SELECT object_key FROM artifact") if key]
    db.close_all()
    present = set(object_checksums(settings))
    return sorted(set(keys) - present)


def test_backup_files_are_readable_by_their_owner_alone(source, tmp_path):
    fill_with_a_studio(source)
    folder = one_backup(source, tmp_path)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {path.name: path.stat().st_mode & 0o777 for path in folder.iterdir()} == dict.fromkeys(BACKUP_FILES,
                                                                                               0o600)


def test_uploads_and_deletions_while_the_backup_runs_restore_without_a_row_missing_its_object(source, tmp_path):
    fill_with_a_studio(source)
    folder = one_backup(source, tmp_path, STUDIO_BACKUP_HOOK=HOOK, BACKUP_SCENARIO="busy")
    with tarfile.open(folder / "objects-late.tar") as late:
        assert [member.name for member in late if member.isfile()] == ["objects/datasets/added-during-backup/original",
                                                                       "objects.sha256"]
    wipe(source)
    restored = script("restore.sh", source, str(folder))
    assert restored.returncode == 0, restored.stderr
    assert dangling_references(source) == []
    db = make_database(source.resolved_database_url)
    with db.connection_context():
        names = {name for (name,) in db.execute_sql("SELECT name FROM dataset")}
    db.close_all()
    # The upload landed between the object export and the dump: its row and its object are both back.
    assert "added during the backup" in names and "chat" not in names


def test_a_backup_refuses_to_finish_when_an_object_its_dump_needs_is_gone(source, tmp_path):
    fill_with_a_studio(source)
    result = script("backup.sh", source, "--dest", str(tmp_path / "backups"), STUDIO_BACKUP_HOOK=HOOK,
                    BACKUP_SCENARIO="vanish")
    assert result.returncode != 0 and "datasets/added-during-backup/original" in result.stderr
    assert [path.name for path in (tmp_path / "backups").iterdir()] == []


def flip_a_byte(path: Path) -> None:
    """Change one byte in the middle of a file."""
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 1
    path.write_bytes(bytes(content))


def drop_from_object_list(folder: Path) -> None:
    """Leave one referenced object out of objects.sha256, with manifest.sha256 rewritten to match."""
    referenced = (folder / "referenced.keys").read_text().split()
    lines = (folder / "objects.sha256").read_text().splitlines(keepends=True)
    (folder / "objects.sha256").write_text("".join(line for line in lines if not line.endswith(f"  {referenced[0]}\n")))
    reseal(folder)


def reseal(folder: Path) -> None:
    """Rewrite manifest.sha256 to match the files as they are now, as a forger would."""
    names = [line.split("  ", 1)[1] for line in (folder / "manifest.sha256").read_text().splitlines()]
    sums = [f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n" for name in names]
    (folder / "manifest.sha256").write_text("".join(sums))


@pytest.mark.parametrize("damage, message", [
    (lambda folder: flip_a_byte(folder / "database.dump"), "manifest.sha256"),
    (lambda folder: (folder / "objects-late.tar").unlink(), "objects-late.tar"),
    (lambda folder: (folder / "manifest.sha256").unlink(), "manifest.sha256"),
    (lambda folder: flip_a_byte(folder / "referenced.keys"), "manifest.sha256"),
    (drop_from_object_list, "lacks"),
], ids=["changed dump", "missing late objects", "missing manifest", "changed key list", "object left out"])
def test_restore_refuses_a_backup_that_its_manifest_does_not_vouch_for_and_touches_nothing(source, tmp_path,
                                                                                          damage, message):
    fill_with_a_studio(source)
    folder = one_backup(source, tmp_path)
    damage(folder)
    wipe(source)
    refused = script("restore.sh", source, str(folder))
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    assert table_count(source) == 0 and object_checksums(source) == {}


def test_the_backup_knows_every_column_that_holds_an_object_key():
    columns = {(model._meta.table_name, field.column_name) for model in ALL_MODELS
               for field in model._meta.sorted_fields if field.name.endswith("_key")}
    assert columns == {(table, column) for table, names in REFERENCES.items() for column in names}
