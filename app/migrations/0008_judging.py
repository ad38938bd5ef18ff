"""Judging results: a job's run options (samples, the job it continues) and its checkpoints as rows."""

from peewee import *


def up(migrator, db):
    migrator.migrate(migrator.add_column("job", "run_options", JSONField(null=True)))

    class Job(Model):
        class Meta:
            database = db
            table_name = "job"

    class Checkpoint(Model):
        job = ForeignKeyField(Job, on_delete="CASCADE")
        step = IntegerField()
        metrics = JSONField(null=True)
        artifact = CharField(max_length=255, null=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "checkpoint"
            indexes = ((("job", "step"), True),)

    db.create_tables([Checkpoint])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("checkpoint"))
    migrator.migrate(migrator.drop_column("job", "run_options"))
