"""Personal Kaggle accounts (the secret encrypted at rest) and the account each job's run belongs to."""
from peewee import *


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class KaggleAccount(Model):
        user = ForeignKeyField(User, unique=True, on_delete='CASCADE')
        username = CharField(max_length=64)
        kind = CharField(max_length=8)
        secret = TextField()
        linked_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'kaggle_account'
    db.create_tables([KaggleAccount])
    migrator.migrate(
        migrator.add_column('job', 'backend_account', CharField(max_length=64, null=True)),
        migrator.add_index('job', ('backend_account',), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('job', 'job_backend_account'),
        migrator.drop_column('job', 'backend_account'),
    )
    db.execute_sql('DROP TABLE kaggle_account')
