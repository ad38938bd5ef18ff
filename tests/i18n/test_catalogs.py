"""The catalogs match the code as it is: every marked string is in the English catalog, translated in Spanish."""
from __future__ import annotations

from babel.messages.catalog import Catalog

from tests.support.i18n import extracted_catalog, read_catalog, translation_problems

LANGUAGES = ("es",)


def test_english_catalog_holds_exactly_what_the_code_and_templates_mark(tmp_path):
    marked = {message.id for message in extracted_catalog(tmp_path) if message.id}
    english = {message.id for message in read_catalog("en") if message.id}
    assert not marked - english, f"not in the catalogs (run make i18n): {sorted(marked - english, key=str)}"
    assert not english - marked, f"no longer marked (run make i18n): {sorted(english - marked, key=str)}"


def test_spanish_translates_every_entry_of_the_english_catalog():
    english = read_catalog("en")
    for language in LANGUAGES:
        assert translation_problems(english, read_catalog(language)) == [], language


def test_a_missing_fuzzy_untranslated_or_misformatted_entry_is_a_problem():
    english, spanish = Catalog(locale="en"), Catalog(locale="es")
    for message_id in ("Jobs", "Datasets", "Settings", "Job “%(name)s” queued.", ("%(num)s file", "%(num)s files")):
        english.add(message_id)
    spanish.add("Jobs", "Trabajos", flags=["fuzzy"])
    spanish.add("Settings", "")
    spanish.add("Job “%(name)s” queued.", "Trabajo «%(nombre)s» en cola.", flags=["python-format"])
    spanish.add(("%(num)s file", "%(num)s files"), ("%(num)s archivo", "", ""))
    problems = translation_problems(english, spanish)
    assert problems[:4] == ["fuzzy: 'Jobs'", "missing: 'Datasets'", "untranslated: 'Settings'",
                            "untranslated: ('%(num)s file', '%(num)s files')"]
    assert any("placeholder" in problem or "unknown named" in problem for problem in problems[4:]), problems
