"""A metric event's series (its data's `type`: progress, eval…), its position in that series and how many times
2 divides the position, in columns of their own with the indexes a chart reads (app/jobs/metric_points.py): a
chart's thinned points are one index range a series instead of a window over every event's JSON."""
from peewee import *

# As in app/jobs/metric_points.py when this was written (a migration never changes with the code).
MAX_LEVEL = 20


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('job_event', 'series', CharField(max_length=16, null=True)),
        migrator.add_column('job_event', 'point', IntegerField(null=True)),
        migrator.add_column('job_event', 'level', SmallIntegerField(null=True)),
    )
    type_of_data = "data->>'type'" if isinstance(db, PostgresqlDatabase) else "json_extract(data, '$.type')"
    # The SQL below is built from constants only.
    db.execute_sql(f"UPDATE job_event SET series = {type_of_data} WHERE kind = 'metric' "  # noqa: S608
                   f"AND length({type_of_data}) <= 16")
    db.execute_sql("UPDATE job_event SET point = numbered.n FROM ("
                   "SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id, series ORDER BY id) AS n "
                   "FROM job_event WHERE series IS NOT NULL) AS numbered WHERE job_event.id = numbered.id")
    # point / n * n = point: n divides point (integer division in both databases; `%` means a parameter to
    # psycopg2, and SQLite may lack mod()).
    levels = " ".join(f"WHEN point / {1 << level} * {1 << level} = point THEN {level}"
                      for level in range(MAX_LEVEL, 0, -1))
    db.execute_sql(f"UPDATE job_event SET level = CASE {levels} ELSE 0 END WHERE point IS NOT NULL")  # noqa: S608
    migrator.migrate(
        migrator.add_index('job_event', ('job_id', 'series', 'id'), False),
        migrator.add_index('job_event', ('job_id', 'series', 'level', 'id'), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('job_event', 'job_event_job_id_series_level_id'),
        migrator.drop_index('job_event', 'job_event_job_id_series_id'),
        migrator.drop_column('job_event', 'level'),
        migrator.drop_column('job_event', 'point'),
        migrator.drop_column('job_event', 'series'),
    )
