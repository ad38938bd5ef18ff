"""Judging results: a job's run options (samples, the job it continues), its checkpoints as rows, playground
completions."""

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

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class Completion(Model):
        job = ForeignKeyField(Job, on_delete="CASCADE")
        owner = ForeignKeyField(User, on_delete="CASCADE")
        messages = JSONField()
        max_tokens = IntegerField()
        temperature = FloatField()
        adapter = BooleanField()
        status = CharField(max_length=16)
        text = TextField()
        tokens = IntegerField()
        error = TextField(null=True)
        first_token_seconds = FloatField(null=True)
        created_at = DateTimeField()
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "completion"
            indexes = ((("owner", "created_at"), False),)

    db.create_tables([Checkpoint, Completion])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("completion"))
    migrator.migrate(migrator.drop_table("checkpoint"))
    migrator.migrate(migrator.drop_column("job", "run_options"))
