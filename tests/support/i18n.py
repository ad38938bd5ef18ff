"""The translation catalogs as tests need them: compiled (.mo) from the .po files, as setup does it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tests.support.processes import PROJECT_ROOT

TRANSLATIONS = PROJECT_ROOT / "translations"


def catalog_paths() -> list[Path]:
    """Every language's messages.po."""
    return sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))


def compile_catalogs() -> None:
    """Write each messages.mo older than its .po (atomically, so parallel test processes may race)."""
    for po_path in catalog_paths():
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as source:
            catalog = read_po(source)
        handle, temporary = tempfile.mkstemp(dir=po_path.parent, suffix=".mo.tmp")
        with os.fdopen(handle, "wb") as target:
            write_mo(target, catalog)
        os.replace(temporary, mo_path)


def extracted_catalog(output_dir: Path):
    """The strings the code and templates mark now, extracted as `make i18n` does (scripts/i18n.sh)."""
    pot = output_dir / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", "extract", "-F", str(PROJECT_ROOT / "babel.cfg"), "-k", "_l",
                                "-k", "lazy_gettext", "--no-location", "--sort-output", "-o", str(pot),
                                str(PROJECT_ROOT)])
    with pot.open("rb") as source:
        return read_po(source)


def read_catalog(language: str):
    """The committed catalog of a language."""
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)


def translation_problems(english, translated) -> list[str]:
    """What the translated catalog lacks against the English one: missing, fuzzy or empty entries, and
    translations whose placeholders differ from the English."""
    problems = []
    for message in english:
        if not message.id:
            continue
        ours = translated.get(message.id)
        strings = ours.string if ours is not None and isinstance(ours.string, tuple) else (getattr(ours, "string", ""),)
        if ours is None:
            problems.append(f"missing: {message.id!r}")
        elif ours.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        elif not all(strings):
            problems.append(f"untranslated: {message.id!r}")
    for message, errors in translated.check():
        problems += [f"{error}: {message.id!r}" for error in errors]
    return problems
