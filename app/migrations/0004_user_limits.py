"""Per-user quotas: the three limits an admin may set on a user (NULL: the installation's default)."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('user', 'max_active_jobs', IntegerField(null=True)),
        migrator.add_column('user', 'max_stored_bytes', BigIntegerField(null=True)),
        migrator.add_column('user', 'max_uploads_per_day', IntegerField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('user', 'max_uploads_per_day'),
        migrator.drop_column('user', 'max_stored_bytes'),
        migrator.drop_column('user', 'max_active_jobs'),
    )
