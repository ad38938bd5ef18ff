"""Jobs that end and names that cannot collide: bounded stage attempts with the last error, the open remote
session that holds a concurrency slot, and this installation's id (used in Kaggle slugs)."""
import datetime
import secrets

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("job", "stage_attempts", IntegerField(default=0)))
    migrator.migrate(migrator.add_column("job", "last_error", TextField(null=True)))
    migrator.migrate(migrator.add_column("job", "remote_open", BooleanField(default=False)))

    class Installation(Model):
        installation_id = CharField(unique=True, max_length=32)
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'installation'
    db.create_tables([Installation])
    Installation.create(id=1, installation_id=secrets.token_hex(4),
                        created_at=datetime.datetime.now(datetime.UTC).replace(tzinfo=None))


def down(migrator, db):
    migrator.migrate(migrator.drop_table("installation"))
    migrator.migrate(migrator.drop_column("job", "remote_open"))
    migrator.migrate(migrator.drop_column("job", "last_error"))
    migrator.migrate(migrator.drop_column("job", "stage_attempts"))
