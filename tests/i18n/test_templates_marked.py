"""Every word a page shows is marked for translation: the templates are parsed, not rendered."""
from __future__ import annotations

import jinja2
import pytest

from tests.support.processes import PROJECT_ROOT
from tests.support.unmarked import unmarked_text

TEMPLATES = sorted((PROJECT_ROOT / "templates").rglob("*.html"))
ENVIRONMENT = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: str(path.relative_to(PROJECT_ROOT / "templates")))
def test_template_marks_every_visible_word_for_translation(path):
    found = unmarked_text(ENVIRONMENT, path.read_text(encoding="utf-8"))
    assert not found, "unmarked text (wrap it in {{ _(\"…\") }}):\n" + "\n".join(
        f"  {path.name}:{line}: {text}" for line, text in found)


def test_the_checker_finds_text_attributes_and_strings_left_unmarked():
    source = ('<h1>Datasets</h1>\n<input placeholder="Search" aria-label="{{ _(\'Search\') }}">\n'
              '<p title="{{ \'A tip\' }}">{{ when if when else "never" }} {{ badge("muted", "revoked") }}</p>\n'
              '<i class="{{ \'is-active\' }}" data-x="y">{{ _("Marked") }} {{ count|number }} · Finetune Studio</i>')
    assert unmarked_text(ENVIRONMENT, source) == [(1, "Datasets"), (2, "placeholder='Search'"), (3, "A tip"),
                                                  (3, "never"), (3, "revoked")]


def test_templates_are_found():
    assert len(TEMPLATES) > 30 and any(path.name == "base.html" for path in TEMPLATES)
