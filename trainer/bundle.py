"""The training program as one file: a deterministic zipapp of the trainer package, run locally and on Kaggle.

Standard library only. The same sources always make the same bytes (sorted entries, fixed timestamps,
permissions and compression), so a bundle's hash names the program it holds: the Kaggle backend derives a
kernel's title from it, which lets a retried push find the kernel it pushed before.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ENTRY_POINT = b'''"""Runs the bundled training program of Finetune Studio (see trainer/__main__.py)."""
import sys

from trainer.__main__ import main

sys.exit(main())
'''
TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
FILE_MODE = 0o644
# Stored, not deflated: deflate's output can change with the zlib build, and the bytes must depend on the sources
# alone. The bundle stays small either way (the sources are some 60 KB).
COMPRESSION = zipfile.ZIP_STORED


def bundle_entries(package: Path = PACKAGE) -> dict[str, bytes]:
    """What the bundle holds: the package's Python sources (no caches, nothing else) and the entry point."""
    entries = {f"{package.name}/{path.name}": path.read_bytes() for path in package.glob("*.py")}
    return {"__main__.py": ENTRY_POINT, **entries}


def bundle_bytes(package: Path = PACKAGE) -> bytes:
    """The zipapp of package, byte for byte the same whenever its sources are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(bundle_entries(package).items()):
            info = zipfile.ZipInfo(name, date_time=TIMESTAMP)
            info.compress_type = COMPRESSION
            info.create_system = 3  # Unix, whatever builds it, so that the mode below reads as one
            info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def build_bundle(folder: Path, package: Path = PACKAGE) -> Path:
    """folder/trainer-<sha256 prefix>.pyz holding package, written atomically unless an identical one is there."""
    data = bundle_bytes(package)
    target = folder / f"{package.name}-{hashlib.sha256(data).hexdigest()[:12]}.pyz"
    if target.is_file() and target.read_bytes() == data:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(partial, FILE_MODE)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target
