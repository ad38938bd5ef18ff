"""The bundle the Studio runs: one deterministic file holding exactly the trainer sources, runnable anywhere;
and the parts of the package the Studio imports, which must not need the training stack."""
from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

from tests.support.training import PROJECT_ROOT
from trainer.bundle import PACKAGE, build_bundle, bundle_bytes

SOURCES = sorted(path.name for path in PACKAGE.glob("*.py"))
# The modules the Studio imports (and the Kaggle bootstrap, from the bundle): the standard library only.
STANDARD_LIBRARY_ONLY = ("protocol", "errors", "config", "records", "bundle")
TRAINING_STACK = ("torch", "transformers", "peft", "tokenizers", "jinja2")


def test_two_builds_of_the_same_sources_are_byte_identical(tmp_path):
    first, second = build_bundle(tmp_path / "one"), build_bundle(tmp_path / "two")
    assert first.read_bytes() == second.read_bytes() == bundle_bytes()
    assert first.name == second.name == f"trainer-{hashlib.sha256(first.read_bytes()).hexdigest()[:12]}.pyz"


def test_a_changed_source_makes_another_bundle_and_file_times_or_modes_do_not(tmp_path):
    copy = shutil.copytree(PACKAGE, tmp_path / "trainer", ignore=shutil.ignore_patterns("__pycache__"))
    os.utime(copy / "loop.py", (0, 0))
    (copy / "data.py").chmod(0o600)
    assert bundle_bytes(copy) == bundle_bytes()
    (copy / "loop.py").write_text((copy / "loop.py").read_text() + "# changed\n")
    assert build_bundle(tmp_path / "out", copy).name != build_bundle(tmp_path / "out").name


def test_the_bundle_holds_exactly_the_trainer_sources_with_fixed_metadata(tmp_path):
    (PACKAGE / "__pycache__").mkdir(exist_ok=True)  # what importing the package leaves, never bundled
    with zipfile.ZipFile(build_bundle(tmp_path)) as archive:
        infos = archive.infolist()
        assert [info.filename for info in infos] == ["__main__.py", *(f"trainer/{name}" for name in SOURCES)]
        for name in SOURCES:
            assert archive.read(f"trainer/{name}") == (PACKAGE / name).read_bytes()
    assert {(info.date_time, info.compress_type, info.external_attr >> 16) for info in infos} == {
        ((1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED, 0o100644)}


def test_a_build_reuses_an_identical_file_and_replaces_a_damaged_one(tmp_path):
    path = build_bundle(tmp_path)
    os.utime(path, (1, 1))
    assert build_bundle(tmp_path) == path and path.stat().st_mtime == 1  # found, not written again
    path.write_bytes(b"damaged")
    assert build_bundle(tmp_path).read_bytes() == bundle_bytes()
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no partial file left behind


def test_the_bundle_runs_as_a_script_away_from_the_checkout(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(build_bundle(tmp_path)), "--help"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout and "--output" in done.stdout


def test_the_studio_imports_the_protocol_config_records_and_bundle_without_the_training_stack():
    code = ("import sys, trainer.protocol, trainer.config, trainer.records, trainer.bundle; "
            f"print([name for name in {TRAINING_STACK!r} if name in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=PROJECT_ROOT, check=True)
    assert done.stdout.strip() == "[]"


def imported_modules(name: str) -> set[str]:
    """The top-level names of every module trainer/<name>.py imports, wherever in the file."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "trainer":  # from trainer import records
            found |= {f"trainer.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return found


def test_the_standard_library_modules_import_only_the_standard_library_and_each_other():
    allowed = {f"trainer.{name}" for name in STANDARD_LIBRARY_ONLY}
    for name in STANDARD_LIBRARY_ONLY:
        outside = {module for module in imported_modules(name)
                   if module.split(".")[0] not in sys.stdlib_module_names and module not in allowed}
        assert not outside, (name, outside)


def test_the_package_never_imports_the_studio():
    for name in SOURCES:
        assert not {module.split(".")[0] for module in imported_modules(name[:-3])} & {"app", "workers"}, name
