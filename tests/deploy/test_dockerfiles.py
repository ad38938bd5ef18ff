"""Dockerfile.prod and nginx/Dockerfile: hadolint-clean, multi-stage, slim, non-root, health-checked."""
from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

from app.settings import PROJECT_ROOT
from tests.support.deploy import venv_tool

APP_DOCKERFILE = PROJECT_ROOT / "Dockerfile.prod"
NGINX_DOCKERFILE = PROJECT_ROOT / "nginx/Dockerfile"
# Packages that would make the web/worker image gigabytes large; training runs on Kaggle.
TRAINING_PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "nvidia-")
COMPILERS = ("gcc", "g++", "build-essential", "clang", "rustc", "cargo")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"^\s*#.*\n", "", dockerfile.read_text(), flags=re.MULTILINE)
    text = re.sub(r"\\\n", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip()]


def stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, arguments in instructions(dockerfile):
        if instruction == "FROM":
            current = [(instruction, arguments)]
            named[arguments.split()[-1] if " AS " in arguments.upper() else f"stage{len(named)}"] = current
        elif current:
            current.append((instruction, arguments))
    return named


def last(stage: list[tuple[str, str]], instruction: str) -> str:
    """The arguments of the stage's last such instruction."""
    found = [arguments for name, arguments in stage if name == instruction]
    assert found, f"no {instruction}"
    return found[-1]


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, NGINX_DOCKERFILE], ids=["app", "nginx"])
def test_hadolint_finds_nothing(dockerfile):
    result = subprocess.run([venv_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


def test_app_image_stages_build_assets_and_wheels_apart_from_the_runtime():
    assert list(stages(APP_DOCKERFILE)) == ["assets", "builder", "native", "runtime", "gpu-worker"]
    builder = " ".join(arguments for _, arguments in stages(APP_DOCKERFILE)["builder"])
    # Wheels only: no package needs a compiler, on arm64 or amd64; the Studio's C helpers have a stage of their own,
    # whose every source is copied in and whose modules the runtime takes.
    assert "--only-binary=:all:" in builder
    native = " ".join(arguments for _, arguments in stages(APP_DOCKERFILE)["native"])
    for source in sorted((PROJECT_ROOT / "app").rglob("*.c")):
        assert str(source.relative_to(PROJECT_ROOT)) in native, source
    assert "scripts/build_native.py --out /native" in native
    runtime = " ".join(arguments for _, arguments in stages(APP_DOCKERFILE)["runtime"])
    assert "--from=native /native/app app" in runtime


def test_runtime_is_non_root_health_checked_and_served_by_gunicorn_with_its_config():
    runtime = stages(APP_DOCKERFILE)["runtime"]
    user = last(runtime, "USER").split(":")[0]
    assert user.isdigit() and int(user) >= 1000
    assert "scripts.healthcheck" in last(runtime, "HEALTHCHECK")
    command = last(runtime, "CMD")
    assert command.startswith('["gunicorn"') and '"gunicorn.conf.py"' in command
    # Any of these would override gunicorn.conf.py's worker count or timeouts.
    assert not re.search(r"--(workers|timeout|graceful-timeout|bind)\b|\"-w\"", command)


def test_runtime_carries_neither_torch_nor_compilers():
    named = stages(APP_DOCKERFILE)
    runtime_text = " ".join(arguments for stage in ("builder", "runtime") for _, arguments in named[stage])
    requirements = (PROJECT_ROOT / "requirements.txt").read_text().lower()
    for package in TRAINING_PACKAGES:
        assert not re.search(rf"^{re.escape(package)}", requirements, re.MULTILINE), package
        assert package not in runtime_text, package
    assert not any(re.search(rf"\b{re.escape(compiler)}\b", runtime_text) for compiler in COMPILERS)


def test_gpu_worker_adds_the_training_stack_and_stays_non_root():
    gpu = stages(APP_DOCKERFILE)["gpu-worker"]
    assert gpu[0][1].startswith("runtime AS")
    text = " ".join(arguments for _, arguments in gpu)
    assert "requirements-train.txt" in text and "bitsandbytes==" in text
    assert last(gpu, "USER").split(":")[0].isdigit() and last(gpu, "USER") != "0"
    assert last(gpu, "CMD") == '["python", "-m", "workers"]'


def test_runtime_copies_everything_the_app_and_its_tools_import():
    copied = " ".join(arguments for name, arguments in stages(APP_DOCKERFILE)["runtime"] if name == "COPY")
    for path in ("wsgi.py", "gunicorn.conf.py", "app", "workers", "trainer", "templates", "static",
                 "scripts/healthcheck.py", "scripts/objects.py"):
        assert re.search(rf"(^|\s){re.escape(path)}(\s|$)", copied), path


def test_nginx_image_is_alpine_with_the_site_script_and_static_files():
    final = list(stages(NGINX_DOCKERFILE).values())[-1]
    assert re.match(r"nginx:[\d.]+-alpine$", final[0][1])
    copies = [arguments for name, arguments in final if name == "COPY"]
    assert any("--chmod=0755 nginx/studio-site.sh /docker-entrypoint.d/" in line for line in copies)
    assert any("/usr/share/nginx/studio/static" in line for line in copies)
    assert "nginx-health" in last(final, "HEALTHCHECK")


def test_dockerignore_keeps_out_secrets_but_not_what_the_images_copy():
    patterns = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    ignored = [p for p in patterns if not p.startswith("!")]

    def excluded(path: str) -> bool:
        parts = Path(path).parts
        return any(fnmatch.fnmatch("/".join(parts[:i]), p) for p in ignored for i in range(1, len(parts) + 1))

    assert excluded(".env") and excluded(".git/config") and excluded("data/backups/x") and excluded("tests/x.py")
    for dockerfile in (APP_DOCKERFILE, NGINX_DOCKERFILE):
        for instruction, arguments in instructions(dockerfile):
            if instruction == "COPY" and "--from=" not in arguments:
                for source in [a for a in arguments.split() if not a.startswith("--")][:-1]:
                    assert not excluded(source), f"{dockerfile.name}: {source} is in .dockerignore"


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, NGINX_DOCKERFILE], ids=["app", "nginx"])
def test_every_base_image_is_pinned_to_an_exact_release(dockerfile):
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile.read_text(), re.MULTILINE))
    named = set(stages(dockerfile))
    for instruction, arguments in instructions(dockerfile):
        if instruction == "FROM":
            image = next(word for word in arguments.split() if not word.startswith("--"))
            image = re.sub(r"\$\{(\w+)\}", lambda match: defaults[match.group(1)], image)
            if image not in named:
                assert re.match(r"^[\w./-]+:\d+\.\d+\.\d+(-[a-z0-9.-]+)?$", image), image
