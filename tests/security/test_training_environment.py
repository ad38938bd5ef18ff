"""The training program runs with an allowlisted environment: what it needs to run, none of the web's secrets."""
from __future__ import annotations

import json

from app.db import database
from app.extensions import get_job_context
from app.jobs.backends import TrainingInputs
from app.jobs.backends.local import LocalRun
from tests.support.factories import make_job

SECRETS = {"SECRET_KEY": "web-secret-key-Xk29", "DATABASE_URL": "postgresql://studio:db-Xk29@db/studio",
           "DB_PASSWORD": "db-Xk29", "REDIS_URL": "redis://:redis-Xk29@redis:6379/0", "MINIO_PASSWORD": "minio-Xk29",
           "MINIO_USER": "studio", "KAGGLE_KEY": "kaggle-Xk29", "KAGGLE_API_TOKEN": "KGAT_Xk29",
           "METRICS_TOKEN": "metrics-Xk29", "AWS_SECRET_ACCESS_KEY": "aws-Xk29"}
NEEDED = {"HF_HOME": "/models/hf", "CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "2", "LANG": "C.UTF-8"}
# A stand-in for the training program that writes down the environment it was given.
PRINT_ENVIRONMENT = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[-1] + '.env.json', 'w'))\n"


def test_the_local_run_starts_the_program_without_the_webs_secrets(app, user, tmp_path, monkeypatch):
    for name, value in {**SECRETS, **NEEDED}.items():
        monkeypatch.setenv(name, value)
    program = tmp_path / "print_environment.py"
    program.write_text(PRINT_ENVIRONMENT)
    with app.app_context(), database.connection_context():
        job = make_job(user)
        run = LocalRun(get_job_context(), job)
    run.folder.mkdir(parents=True)
    inputs = TrainingInputs(job_id=job.id, config={}, data_dir=tmp_path, dataset_sha256="", model_source="builtin",
                            training_program=program)
    process = run.start(inputs)
    process.communicate(timeout=60)
    assert process.returncode == 0
    given = json.loads((run.folder / "output.env.json").read_text())
    assert not set(SECRETS) & set(given)
    assert not [name for name, value in given.items() if "Xk29" in value]
    assert {name: given.get(name) for name in NEEDED} == NEEDED
    assert given["PATH"] and given["PYTHONUNBUFFERED"] == "1"
