"""docs/OBSERVABILITY.md stays true: its scrape config passes promtool, its dashboard asks only for real metrics."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from app.settings import PROJECT_ROOT

DOC = (PROJECT_ROOT / "docs" / "OBSERVABILITY.md").read_text()


def block(language: str) -> str:
    """The first fenced block of language in the document."""
    return re.search(rf"```{language}\n(.*?)```", DOC, re.S).group(1)


def test_the_scrape_configuration_passes_promtool(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(block("yaml").replace("/etc/prometheus/studio_metrics_token", str(tmp_path / "token")))
    (tmp_path / "token").write_text("m" * 32)
    result = subprocess.run([shutil.which("promtool"), "check", "config", str(config)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_only_queries_metrics_the_studio_exports(client):
    dashboard = json.loads(re.search(r"```json\n(\{\n.*?)```", DOC, re.S).group(1))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    wanted = {name for expr in exprs for name in re.findall(r"\b(studio_[a-z_]+)", expr)}
    exposition = client.get("/api/v1/metrics").get_data(as_text=True)
    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    exported = {family.name + suffix for family in families.values()
                for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    assert len(dashboard["panels"]) >= 10
    assert wanted - exported == set()
