"""Compile the Studio's optional C helpers (app/**/*.c) into extension modules beside their sources.

Each app/<package>/<name>.c becomes the module app.<package>._<name>, built with the compiler and headers of the
Python that runs this script; a module newer than its source is left as it is. Without a C compiler it fails,
and the code that imports a helper runs its Python equivalent instead (scripts/setup.sh only warns).

    python scripts/build_native.py [--out FOLDER]   # FOLDER/app/…: the modules there instead (the image's build)
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def compile_command(source: Path, target: Path) -> list[str]:
    """The compiler's command line for one helper: optimised, position-independent, against this Python."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    return [*compiler, "-O2", "-shared", "-fPIC", "-Wall", f"-I{sysconfig.get_paths()['include']}",
            str(source), "-o", str(target)]


def main() -> int:
    """Build every helper that is missing or older than its source."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the folder for the modules (default: beside their sources)")
    out = parser.parse_args().out
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for source in sorted((PROJECT_ROOT / "app").rglob("*.c")):
        folder = source.parent if out is None else out / source.parent.relative_to(PROJECT_ROOT)
        target = folder / f"_{source.stem}{suffix}"
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(compile_command(source, target), capture_output=True, text=True)
        if result.returncode:
            print(f"{source.relative_to(PROJECT_ROOT)}: {result.stderr.strip()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
