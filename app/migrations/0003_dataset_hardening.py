"""Datasets: the number of validation attempts (bounded), and the index of their canonical records' offsets."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('dataset', 'validation_attempts', IntegerField(default=0)),
        migrator.add_column('dataset', 'index_key', CharField(null=True, max_length=512)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('dataset', 'index_key'),
        migrator.drop_column('dataset', 'validation_attempts'),
    )
