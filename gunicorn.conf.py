"""gunicorn settings of the Studio's web process: workers, graceful shutdown, JSON logs, shared Prometheus metrics."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Every worker writes its metrics to this folder and a scrape sums them. It must be set before anything
# imports prometheus_client (the app does), which picks its multiprocess mode on first import.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="studio-metrics-")
metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

from gunicorn import glogging  # noqa: E402

from app.logs import configure_logging  # noqa: E402
from app.settings import Settings  # noqa: E402

_settings = Settings()

# Two processes per CPU plus one (gunicorn's rule of thumb), each with a few threads so a slow upload
# does not hold a whole process; WEB_CONCURRENCY and WEB_THREADS override.
workers = _settings.web_concurrency or 2 * len(os.sched_getaffinity(0)) + 1
threads = _settings.web_threads
# Where to listen comes from the command line (--bind) or, without one, gunicorn's own default:
# 0.0.0.0:$PORT when PORT is set (the image sets 8000; platforms such as Railway set theirs).
# On SIGTERM the workers stop accepting, and requests in flight get 30 s to finish before they are killed
# (docker compose waits longer than that: stop_grace_period).
graceful_timeout = 30
# A worker silent this long is restarted (its requests fail); nginx's proxy_read_timeout is above it.
timeout = 60
# Above nginx's upstream keepalive_timeout (4 s), so gunicorn never closes a connection nginx is reusing.
keepalive = 5
# The workers' heartbeat files: in memory where there is /dev/shm, not on a container's overlay disk,
# whose stalls would get busy workers killed. gunicorn creates them with mkstemp, so a shared folder is safe.
_shared_memory = Path("/dev/shm")  # noqa: S108
if _shared_memory.is_dir():
    worker_tmp_dir = str(_shared_memory)
# The app alone decides which proxy headers to trust (TRUSTED_PROXIES); gunicorn would otherwise honour
# X-Forwarded-Proto from any local process.
forwarded_allow_ips = ""
# Nothing uses gunicorn's control socket, and several servers on one host would share its default path.
control_socket_disable = True


class StudioLogger(glogging.Logger):
    """gunicorn's own lines go through the Studio's handler, so they are JSON lines like the app's."""

    def setup(self, cfg):
        """Configure gunicorn's loggers, then hand their records to the root handler."""
        super().setup(cfg)
        configure_logging(_settings)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True


logger_class = StudioLogger


def on_starting(server):
    """Before any fork: refuse an unsafe production configuration, and start the metrics from empty."""
    if _settings.is_production and _settings.problems():
        print("Refusing to start; fix these settings:", *(f"  - {p}" for p in _settings.problems()),
              sep="\n", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)


def post_worker_init(worker):
    """Say when a worker has loaded the app and serves (its "Booting worker" line comes before)."""
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay, as they must."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Leave no temporary metrics folder behind."""
    if _own_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
