"""Finds user-visible text in a Jinja template that is not marked for translation (the test's checker)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from jinja2 import Environment, nodes

# Text that is the same in every language: the product's name, units, format and protocol names.
ALLOWED = {"Finetune Studio", "sha256", "UTC", "GB", "h", "B", "kB", "MB"}
# Attributes a person reads or hears.
VISIBLE_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt", "hx-confirm", "aria-valuetext", "label"}
# Calls whose string arguments are translated (or are never shown).
MARKING_CALLS = {"_", "gettext", "ngettext", "pgettext", "npgettext"}
SILENT_CALLS = {"url_for", "csrf_token", "estimates", "described", "field_error", "pager", "hyperparameter"}
# The macros whose later arguments (or `label=`) are shown: badge(status_css_class, label).
LABEL_CALLS = {"badge"}
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
LETTER = re.compile(r"[^\W\d_]")
# printf formats ("%.4f"|format(x)) and example URLs (placeholder="https://…") hold letters but no words.
NOT_WORDS = re.compile(r"%(\(\w+\))?[-#0 +]*\d*(\.\d+)?[a-zA-Z%]|https?://\S+")
ATTRIBUTE_VALUE = re.compile(r"([\w:-]+)=[\"'][^\"']*$")


def _blank_code(source: str) -> str:
    """The template with comments and Jinja code blanked out, character for character (positions stay put)."""
    blank = lambda found: re.sub(r"[^\n]", " ", found.group(0))  # noqa: E731
    return JINJA_CODE.sub(blank, JINJA_COMMENT.sub(blank, source))


def _shown(text: str) -> bool:
    """Whether text holds words that need a translation (beyond the allowed names and units)."""
    text = NOT_WORDS.sub(" ", text)
    for allowed in sorted(ALLOWED, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(allowed)}(?!\w)", " ", text)
    return bool(LETTER.search(text))


class _LiteralText(HTMLParser):
    """Collects (line, text) of the template's literal text and visible attribute values."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []

    def handle_starttag(self, tag, attrs):
        """Visible attributes with literal words in them."""
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value and _shown(value):
                self.found.append((self.getpos()[0], f"{name}={value!r}"))

    def handle_data(self, data):
        """Text between tags (but not attribute text that a macro writes into a tag, such as a="b")."""
        if _shown(data) and '="' not in data:
            self.found.append((self.getpos()[0], " ".join(data.split())))


def literal_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of each piece of literal HTML text or visible attribute that is not in a Jinja expression."""
    parser = _LiteralText()
    parser.feed(_blank_code(source))
    parser.close()
    return parser.found


def _strings_shown(node, shown: bool) -> list[tuple[int, str]]:
    """String constants a Jinja expression puts on the page without marking them."""
    if isinstance(node, nodes.Const):
        return [(node.lineno, node.value)] if shown and isinstance(node.value, str) and _shown(node.value) else []
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
        name = node.node.name
        if name in MARKING_CALLS | SILENT_CALLS:
            return []
        if name in LABEL_CALLS:
            found = [item for arg in node.args[1:] for item in _strings_shown(arg, True)]
            return found + [item for kw in node.kwargs if kw.key == "label" for item in _strings_shown(kw.value, True)]
    if isinstance(node, nodes.Call):
        # A field or macro call: only the visible keyword arguments are shown.
        return [item for kw in node.kwargs if kw.key in VISIBLE_ATTRIBUTES
                for item in _strings_shown(kw.value, True)]
    if isinstance(node, nodes.Filter | nodes.Test):
        return _strings_shown(node.node, shown) if node.node is not None else []  # a filter's arguments are not shown
    if isinstance(node, nodes.CondExpr):
        return [item for part in (node.expr1, node.expr2) if part is not None for item in _strings_shown(part, shown)]
    if isinstance(node, nodes.Concat | nodes.Add | nodes.Or):
        return [item for child in node.iter_child_nodes() for item in _strings_shown(child, shown)]
    return [item for child in node.iter_child_nodes() for item in _strings_shown(child, False)]


def _context(blanked: str, start: int) -> bool:
    """Whether an expression starting at start is shown: page text, or the value of a visible attribute."""
    before = blanked[:start]
    if before.rfind("<") < before.rfind(">") or "<" not in before:
        return True
    attribute = ATTRIBUTE_VALUE.search(before)
    return bool(attribute) and attribute.group(1) in VISIBLE_ATTRIBUTES


def expression_text(environment: Environment, source: str) -> list[tuple[int, str]]:
    """(line, text) of each unmarked string a {{ … }} expression shows."""
    blanked, found = _blank_code(source), []
    for expression in re.finditer(r"\{\{.*?\}\}", source, re.DOTALL):
        first_line = source.count("\n", 0, expression.start())
        tree = environment.parse(expression.group(0))
        for output in tree.find_all(nodes.Output):
            for child in output.nodes:
                found += [(first_line + line, text) for line, text in
                          _strings_shown(child, _context(blanked, expression.start()))]
    return found


def unmarked_text(environment: Environment, source: str) -> list[tuple[int, str]]:
    """Every piece of user-visible text of the template that is not marked for translation, by line."""
    return sorted(literal_text(source) + expression_text(environment, source))
