"""The indexes of keyset-paged lists and live polls: a user's jobs and datasets by id (and jobs by status), a
job's events by kind then id (the last log line and metric point of a poll), a job's artifacts by id."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_index('job', ('owner_id', 'id'), False),
        migrator.add_index('job', ('owner_id', 'status', 'id'), False),
        migrator.add_index('dataset', ('owner_id', 'id'), False),
        migrator.add_index('job_event', ('job_id', 'kind', 'id'), False),
        migrator.add_index('artifact', ('job_id', 'id'), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('artifact', 'artifact_job_id_id'),
        migrator.drop_index('job_event', 'job_event_job_id_kind_id'),
        migrator.drop_index('dataset', 'dataset_owner_id_id'),
        migrator.drop_index('job', 'job_owner_id_status_id'),
        migrator.drop_index('job', 'job_owner_id_id'),
    )
