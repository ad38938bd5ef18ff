"""The OpenAI dialect and webhooks: a job's metadata, model suffix and pause; webhook endpoints and deliveries."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('job', 'metadata', JSONField(null=True)),
        migrator.add_column('job', 'suffix', CharField(max_length=64, null=True)),
        migrator.add_column('job', 'paused_at', DateTimeField(null=True)),
    )

    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class WebhookEndpoint(Model):
        owner = ForeignKeyField(User, on_delete='CASCADE')
        url = CharField(max_length=2000)
        events = JSONField(default=list)
        secret_encrypted = TextField()
        enabled = BooleanField(default=True)
        consecutive_failures = IntegerField(default=0)
        disabled_reason = TextField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = 'webhook_endpoint'
            indexes = ((('owner', 'created_at'), False),)

    class WebhookDelivery(Model):
        endpoint = ForeignKeyField(WebhookEndpoint, on_delete='CASCADE')
        event_id = CharField(max_length=64)
        event_type = CharField(max_length=64)
        body = TextField()
        status = CharField(max_length=16, default='pending', index=True)
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True)
        response_status = IntegerField(null=True)
        latency_ms = IntegerField(null=True)
        response_excerpt = TextField(null=True)
        created_at = DateTimeField()
        delivered_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = 'webhook_delivery'
            indexes = ((('endpoint', 'id'), False),)

    db.create_tables([WebhookEndpoint, WebhookDelivery])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('webhook_delivery'))
    migrator.migrate(migrator.drop_table('webhook_endpoint'))
    migrator.migrate(
        migrator.drop_column('job', 'paused_at'),
        migrator.drop_column('job', 'suffix'),
        migrator.drop_column('job', 'metadata'),
    )
