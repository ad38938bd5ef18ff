"""Each job's marks for its live polls on its own row: the ids of its last log line, status change and metric
point, and its artifact count, kept by the code that writes events and artifacts (app/jobs/events.py,
app/jobs/artifacts.py). A poll reads the job's row alone instead of planning four subqueries each time."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('job', 'last_log_id', IntegerField(null=True)),
        migrator.add_column('job', 'last_status_id', IntegerField(null=True)),
        migrator.add_column('job', 'last_point_id', IntegerField(null=True)),
        migrator.add_column('job', 'artifact_count', IntegerField(default=0)),
    )
    db.execute_sql(
        "UPDATE job SET "
        "last_log_id = (SELECT MAX(id) FROM job_event WHERE job_event.job_id = job.id AND kind = 'log'), "
        "last_status_id = (SELECT MAX(id) FROM job_event WHERE job_event.job_id = job.id AND kind = 'status'), "
        "last_point_id = (SELECT MAX(id) FROM job_event WHERE job_event.job_id = job.id AND kind = 'metric'), "
        "artifact_count = (SELECT COUNT(*) FROM artifact WHERE artifact.job_id = job.id)")


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('job', 'artifact_count'),
        migrator.drop_column('job', 'last_point_id'),
        migrator.drop_column('job', 'last_status_id'),
        migrator.drop_column('job', 'last_log_id'),
    )
