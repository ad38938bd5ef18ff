"""The official `openai` clients the dialect is tested with: the newest 3.x (the virtualenv's) and the newest 2.x
(installed apart by scripts/setup.sh dev, put first on PYTHONPATH), each run as a script of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.processes import PROJECT_ROOT

# The folder scripts/setup.sh installs requirements-openai-2.txt into (beside the virtualenv's own packages).
OPENAI_2_FOLDER = PROJECT_ROOT / ".venv" / "openai-2"
CLIENTS = {"3.x": None, "2.x": OPENAI_2_FOLDER}
SCRIPT = "tests.openai_api.client_script"


def run_client_script(version: str, phase: str, base_url: str, api_key: str, tag: str, timeout: float = 300) -> dict:
    """Run one phase of the client script under that client version; what it printed, or the test fails."""
    folder = CLIENTS[version]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (folder, PROJECT_ROOT) if p)}
    if folder is not None:
        assert (folder / "openai").is_dir(), f"the 2.x client is missing from {folder}: run scripts/setup.sh dev"
    done = subprocess.run([sys.executable, "-m", SCRIPT, phase, base_url, api_key, tag], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{version} {phase} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["openai"].split(".")[0] == version[0], outcome["openai"]
    return outcome
