"""The user's interface language ('en', 'es'…; NULL: follow the browser, then DEFAULT_LOCALE)."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('user', 'locale', CharField(max_length=16, null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('user', 'locale'),
    )
