"""The initial schema: users, API tokens, datasets, jobs, job events and artifacts.

Timestamps have no database default: the models fill them in Python (app.models.utcnow).
"""
from peewee import *


def up(migrator, db):
    class User(Model):
        email = CharField(unique=True, max_length=254)
        password_hash = CharField()
        is_admin = BooleanField(default=False)
        is_active = BooleanField(default=True)
        created_at = DateTimeField()
        last_login_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'user'
    db.create_tables([User])

    class ApiToken(Model):
        user = ForeignKeyField(User, on_delete='CASCADE')
        name = CharField(max_length=100)
        token_hash = CharField(unique=True, max_length=64)
        prefix = CharField(max_length=16)
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'api_token'
            indexes = ((('user', 'created_at'), False),)
    db.create_tables([ApiToken])

    class Dataset(Model):
        owner = ForeignKeyField(User, on_delete='CASCADE')
        name = CharField(max_length=200)
        original_filename = CharField(null=True, max_length=255)
        file_format = CharField(null=True, max_length=8)
        format = CharField(null=True, max_length=32)
        status = CharField(max_length=16, default='processing')
        object_key = CharField(null=True, max_length=512)
        normalized_key = CharField(null=True, max_length=512)
        size_bytes = BigIntegerField(default=0)
        sha256 = CharField(null=True, max_length=64)
        example_count = IntegerField(null=True)
        stats = JSONField(null=True)
        validation_errors = JSONField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'dataset'
            indexes = ((('owner', 'created_at'), False),)
    db.create_tables([Dataset])

    class Job(Model):
        owner = ForeignKeyField(User, on_delete='CASCADE')
        name = CharField(max_length=200)
        dataset = ForeignKeyField(Dataset, null=True, on_delete='SET NULL')
        validation_dataset = ForeignKeyField(Dataset, null=True, on_delete='SET NULL')
        base_model = CharField(max_length=200)
        method = CharField(max_length=16)
        backend = CharField(max_length=16)
        hyperparameters = JSONField(default=dict)
        status = CharField(index=True, max_length=16, default='queued')
        step = IntegerField(default=0)
        total_steps = IntegerField(null=True)
        epoch = FloatField(default=0.0)
        metrics = JSONField(null=True)
        error = TextField(null=True)
        backend_ref = JSONField(null=True)
        stage = CharField(max_length=16, default='prepare')
        rq_job_id = CharField(null=True, max_length=64)
        lease_owner = CharField(null=True, max_length=128)
        lease_until = DateTimeField(null=True)
        attempts = IntegerField(default=0)
        cancel_requested_at = DateTimeField(null=True)
        created_at = DateTimeField()
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'job'
            indexes = ((('owner', 'created_at'), False),)
    db.create_tables([Job])

    class Artifact(Model):
        job = ForeignKeyField(Job, on_delete='CASCADE')
        name = CharField()
        object_key = CharField(max_length=512)
        size_bytes = BigIntegerField(default=0)
        sha256 = CharField(null=True, max_length=64)
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'artifact'
            indexes = ((('job', 'name'), True),)
    db.create_tables([Artifact])

    class JobEvent(Model):
        job = ForeignKeyField(Job, on_delete='CASCADE')
        kind = CharField(max_length=16)
        message = TextField(default='')
        data = JSONField(null=True)
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'job_event'
            indexes = ((('job', 'id'), False),)
    db.create_tables([JobEvent])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('job_event'))
    migrator.migrate(migrator.drop_table('artifact'))
    migrator.migrate(migrator.drop_table('job'))
    migrator.migrate(migrator.drop_table('dataset'))
    migrator.migrate(migrator.drop_table('api_token'))
    migrator.migrate(migrator.drop_table('user'))
