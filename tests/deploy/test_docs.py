"""The deployment guides stay true: the scripts, options and variables they name exist."""
from __future__ import annotations

import re

import pytest

from app.settings import PROJECT_ROOT

GUIDES = ["DEPLOY_ORACLE_CLOUD.md", "DEPLOY_RAILWAY.md", "PRODUCTION_CHECKLIST.md", "TROUBLESHOOTING_PRODUCTION.md"]


@pytest.mark.parametrize("guide", GUIDES)
def test_every_script_and_option_a_guide_names_exists(guide):
    text = (PROJECT_ROOT / "docs" / guide).read_text()
    for script, options in re.findall(r"scripts/([a-z_]+\.sh)((?: --[a-z-]+)*)", text):
        source = (PROJECT_ROOT / "scripts" / script).read_text()
        for option in options.split():
            assert f"{option})" in source or f"{option} " in source, f"{guide}: {script} has no {option}"


@pytest.mark.parametrize("guide", GUIDES)
def test_every_variable_a_guide_tells_you_to_set_is_documented(guide):
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE))
    text = (PROJECT_ROOT / "docs" / guide).read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", text)) | set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, re.M))
    # Names of other tools' settings and messages, not the Studio's.
    foreign = {"RAILWAY_DOCKERFILE_PATH", "PORT", "ERR_TOO_MANY_REDIRECTS"}
    assert named - foreign <= documented, named - foreign - documented
