"""The peewee models: users with their tokens and Kaggle accounts, datasets, jobs with their events and artifacts."""
from __future__ import annotations

import datetime
import secrets

import peewee

from app.db import database
from app.errors import NotFound


def utcnow() -> datetime.datetime:
    """The current time in UTC, naive, as every timestamp column stores it."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# The greatest id a row can have (ids are PostgreSQL integers): "up to the last" in a query that takes a bound.
MAX_ID = 2**31 - 1


class BaseModel(peewee.Model):
    """Common base: bound to the configured database, snake_case table names."""

    class Meta:
        database = database
        legacy_table_names = False


class User(BaseModel):
    """A person who signs in; owns datasets, jobs and API tokens."""

    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    is_admin = peewee.BooleanField(default=False)
    is_active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_login_at = peewee.DateTimeField(null=True)
    # Quotas set by an admin; NULL means the installation's default (QUOTA_* settings, app/auth/quotas.py).
    max_active_jobs = peewee.IntegerField(null=True)
    max_stored_bytes = peewee.BigIntegerField(null=True)
    max_uploads_per_day = peewee.IntegerField(null=True)
    # The interface language the user chose (app/i18n.py); NULL follows the browser, then DEFAULT_LOCALE.
    locale = peewee.CharField(max_length=16, null=True)

    # Flask-Login's user protocol.
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session."""
        return str(self.id)


class OwnedModel(BaseModel):
    """A row that belongs to one user, who alone may see it."""

    @classmethod
    def get_owned(cls, object_id, user: User):
        """The row with this id if user owns it; NotFound otherwise, whether it exists or not."""
        try:
            object_id = int(object_id)
        except (TypeError, ValueError):
            raise NotFound(f"{cls.__name__.lower()} not found") from None
        row = cls.get_or_none((cls.id == object_id) & (cls.owner == user.id))
        if row is None:
            raise NotFound(f"{cls.__name__.lower()} not found")
        return row


class ApiToken(BaseModel):
    """A bearer token for the API; only its hash is stored."""

    user = peewee.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = peewee.CharField(max_length=100)
    token_hash = peewee.CharField(max_length=64, unique=True)
    prefix = peewee.CharField(max_length=16)
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "created_at"), False),)

    @property
    def is_revoked(self) -> bool:
        """Whether the token no longer authenticates."""
        return self.revoked_at is not None


class Dataset(OwnedModel):
    """An uploaded training file and what validation found in it."""

    owner = peewee.ForeignKeyField(User, backref="datasets", on_delete="CASCADE")
    name = peewee.CharField(max_length=200)
    original_filename = peewee.CharField(max_length=255, null=True)
    file_format = peewee.CharField(max_length=8, null=True)
    format = peewee.CharField(max_length=32, null=True)
    status = peewee.CharField(max_length=16, default="processing")
    object_key = peewee.CharField(max_length=512, null=True)
    normalized_key = peewee.CharField(max_length=512, null=True)
    # Where each canonical record starts in the normalized file (8-byte offsets), so a page is a ranged read.
    index_key = peewee.CharField(max_length=512, null=True)
    size_bytes = peewee.BigIntegerField(default=0)
    sha256 = peewee.CharField(max_length=64, null=True)
    example_count = peewee.IntegerField(null=True)
    stats = peewee.JSONField(null=True)
    validation_errors = peewee.JSONField(null=True)
    # Counted as each attempt starts, so a validation that keeps failing ends (app/datasets/service.py).
    validation_attempts = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("owner", "created_at"), False), (("owner", "id"), False))


class Job(OwnedModel):
    """A fine-tuning run: what to train, where, and how far it got."""

    owner = peewee.ForeignKeyField(User, backref="jobs", on_delete="CASCADE")
    name = peewee.CharField(max_length=200)
    # A finished job outlives its datasets; deleting one in use by an unfinished job is refused.
    dataset = peewee.ForeignKeyField(Dataset, backref="jobs", null=True, on_delete="SET NULL")
    validation_dataset = peewee.ForeignKeyField(
        Dataset, backref="validation_jobs", null=True, on_delete="SET NULL"
    )
    base_model = peewee.CharField(max_length=200)
    method = peewee.CharField(max_length=16)
    backend = peewee.CharField(max_length=16)
    hyperparameters = peewee.JSONField(default=dict)
    status = peewee.CharField(max_length=16, default="queued", index=True)
    step = peewee.IntegerField(default=0)
    total_steps = peewee.IntegerField(null=True)
    epoch = peewee.FloatField(default=0.0)
    metrics = peewee.JSONField(null=True)
    error = peewee.TextField(null=True)
    backend_ref = peewee.JSONField(null=True)
    # The orchestration step to run next and the RQ job carrying it (see app/jobs/orchestrator.py).
    stage = peewee.CharField(max_length=16, default="prepare")
    rq_job_id = peewee.CharField(max_length=64, null=True)
    # Held by the process running the job's training locally, renewed while it runs.
    lease_owner = peewee.CharField(max_length=128, null=True)
    lease_until = peewee.DateTimeField(null=True)
    attempts = peewee.IntegerField(default=0)
    # Starts of the current stage since it last completed (by the step, RQ or the reconciler): bounded, so
    # a step that keeps failing or crashing its worker ends the job instead of running forever.
    stage_attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    # A run submitted elsewhere (a Kaggle session) that may still be running, cancelled or not: it holds
    # one of its backend's concurrency slots until the backend says it ended.
    remote_open = peewee.BooleanField(default=False)
    # The account on the backend the run belongs to (a Kaggle user name): slots and quota are counted per account.
    backend_account = peewee.CharField(max_length=64, null=True, index=True)
    cancel_requested_at = peewee.DateTimeField(null=True)
    # Set while a pause is asked for or in force (backends whose `pauses` is true): the run checkpoints and stops,
    # and nothing carries the job on until it is resumed (app/jobs/pausing.py).
    paused_at = peewee.DateTimeField(null=True)
    # What a client of the OpenAI dialect (/v1) attached: its key-value metadata and the fine-tuned model's suffix.
    metadata = peewee.JSONField(null=True)
    suffix = peewee.CharField(max_length=64, null=True)
    # How the run is judged and where it starts: sample_count, sample_prompts, init_from (app/jobs/judging.py).
    run_options = peewee.JSONField(null=True)
    # What a live poll's version is drawn from besides the fields it shows, kept here by the code that writes
    # events and artifacts (app/jobs/events.py, app/jobs/artifacts.py): the ids of the job's last log line,
    # status change and metric point, and how many artifacts it has. A poll then reads one row, no subquery.
    last_log_id = peewee.IntegerField(null=True)
    last_status_id = peewee.IntegerField(null=True)
    last_point_id = peewee.IntegerField(null=True)
    artifact_count = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    @property
    def last_event_id(self) -> int:
        """The id of the job's last log line or status change (0 for none): what its page's log has up to."""
        return max(self.last_log_id or 0, self.last_status_id or 0)

    class Meta:
        # Keyset pages of a user's jobs, all or of one status (app/pagination.py).
        indexes = ((("owner", "created_at"), False), (("owner", "id"), False), (("owner", "status", "id"), False))


class JobEvent(BaseModel):
    """One entry in a job's ordered history: a log line, a metric point or a status change."""

    job = peewee.ForeignKeyField(Job, backref="events", on_delete="CASCADE")
    kind = peewee.CharField(max_length=16)
    message = peewee.TextField(default="")
    data = peewee.JSONField(null=True)
    # A metric point's series (its data's `type`: progress, eval…), its position in it and how many times 2
    # divides that position; None for other events (app/jobs/metric_points.py).
    series = peewee.CharField(max_length=16, null=True)
    point = peewee.IntegerField(null=True)
    level = peewee.SmallIntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        # (job, kind, id): a poll's last log line and last metric point are each one index lookup; (job, series,
        # id): a series' last point; (job, series, level, id): a chart's thinned points, one range a series.
        indexes = ((("job", "id"), False), (("job", "kind", "id"), False), (("job", "series", "id"), False),
                   (("job", "series", "level", "id"), False))


class Artifact(BaseModel):
    """A file a job produced, kept in object storage."""

    job = peewee.ForeignKeyField(Job, backref="artifacts", on_delete="CASCADE")
    name = peewee.CharField(max_length=255)
    object_key = peewee.CharField(max_length=512)
    size_bytes = peewee.BigIntegerField(default=0)
    sha256 = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("job", "name"), True), (("job", "id"), False))


class KaggleAccount(BaseModel):
    """A user's own Kaggle account: the user name in clear, the key or access token encrypted (secrets_at_rest)."""

    user = peewee.ForeignKeyField(User, backref="kaggle_accounts", unique=True, on_delete="CASCADE")
    username = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=8)  # "key" (user name + API key) or "token" (an access token)
    secret = peewee.TextField()            # the Fernet ciphertext of the key or token, never the plaintext
    linked_at = peewee.DateTimeField(default=utcnow)


class Checkpoint(BaseModel):
    """A kept checkpoint of a finished job: its step, metrics and the artifact folder holding its adapter."""

    job = peewee.ForeignKeyField(Job, backref="checkpoints", on_delete="CASCADE")
    step = peewee.IntegerField()
    metrics = peewee.JSONField(null=True)
    artifact = peewee.CharField(max_length=255, null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("job", "step"), True),)


class Completion(BaseModel):
    """A playground request on a succeeded job and the text generated for it (filled in as tokens arrive)."""

    job = peewee.ForeignKeyField(Job, backref="completions", on_delete="CASCADE")
    owner = peewee.ForeignKeyField(User, backref="completions", on_delete="CASCADE")
    messages = peewee.JSONField()
    max_tokens = peewee.IntegerField()
    temperature = peewee.FloatField(default=0.0)
    adapter = peewee.BooleanField(default=True)
    status = peewee.CharField(max_length=16, default="queued")
    text = peewee.TextField(default="")
    tokens = peewee.IntegerField(default=0)
    error = peewee.TextField(null=True)
    first_token_seconds = peewee.FloatField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("owner", "created_at"), False),)


class Installation(BaseModel):
    """This Studio installation (one row, id 1): a random id, made once, that keeps its names apart from other
    Studios' (two Studios sharing a Kaggle account, or one whose job ids restarted after a reset)."""

    installation_id = peewee.CharField(max_length=32, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)

    @classmethod
    def current_id(cls) -> str:
        """The installation's id, made now if the row is missing (a database restored without it)."""
        cls.insert(id=1, installation_id=secrets.token_hex(4)).on_conflict_ignore().execute()
        return cls.get_by_id(1).installation_id


class WebhookEndpoint(OwnedModel):
    """A URL of one user's that is told about events, signed with its secret (kept encrypted)."""

    owner = peewee.ForeignKeyField(User, backref="webhook_endpoints", on_delete="CASCADE")
    url = peewee.CharField(max_length=2000)
    events = peewee.JSONField(default=list)
    secret_encrypted = peewee.TextField()
    enabled = peewee.BooleanField(default=True)
    # Failed deliveries in a row; past WEBHOOKS_DISABLE_AFTER_FAILURES the endpoint is disabled, and why is kept.
    consecutive_failures = peewee.IntegerField(default=0)
    disabled_reason = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("owner", "created_at"), False),)


class WebhookDelivery(BaseModel):
    """One event sent (or to be sent) to one endpoint: the exact body signed, and how its attempts went."""

    endpoint = peewee.ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    event_id = peewee.CharField(max_length=64)
    event_type = peewee.CharField(max_length=64)
    body = peewee.TextField()
    status = peewee.CharField(max_length=16, default="pending", index=True)
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(null=True)
    response_status = peewee.IntegerField(null=True)
    latency_ms = peewee.IntegerField(null=True)
    response_excerpt = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("endpoint", "id"), False),)


ALL_MODELS = [User, ApiToken, Dataset, Job, JobEvent, Artifact, Checkpoint, Completion, Installation, WebhookEndpoint,
              WebhookDelivery, KaggleAccount]
# The columns that name stored objects. The sweeper keeps what they name and a restore must find it all; a new
# kind of stored object is added here (tests/deploy/test_backup_restore.py checks every *_key column is).
OBJECT_KEY_COLUMNS = ((Dataset, ("object_key", "normalized_key", "index_key")), (Artifact, ("object_key",)))
