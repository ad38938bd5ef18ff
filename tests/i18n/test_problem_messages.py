"""Dataset problems keep English in storage and the API, and read in Spanish on the pages, line numbers included."""
from __future__ import annotations

import json

from flask_babel import force_locale

from app.datasets.validation import ValidationOptions, validate
from app.web.messages import translate

GOOD = [{"instruction": f"say {n}", "output": str(n)} for n in range(12)]


def lines(*records) -> bytes:
    """A JSONL file of the good records followed by the given lines (dicts as JSON, anything else as is)."""
    body = [json.dumps(r) for r in GOOD] + [json.dumps(r) if isinstance(r, dict | list) else r for r in records]
    return ("\n".join(body) + "\n").encode()


CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def jsonl(*records) -> bytes:
    """A JSONL file of exactly these records."""
    return ("\n".join(json.dumps(record) for record in records) + "\n").encode()


# Files that between them produce every problem message the validator writes.
BAD_FILES = {
    "jsonl": [
        lines({"instruction": "a"}, {"instruction": "", "output": "b"}, {"instruction": 3, "output": "b"},
              {"instruction": "a", "output": "b", "input": 4}, "not json", '{"a": 1,', [1, 2], {"x": 1},
              {"prompt": "p", "completion": "c"}, "{" * 40 + "}" * 40,
              {"instruction": "a", "output": "b" * 300}),
        lines() + b"\xff\xfe\n",
        lines(),
        b"",
    ],
    "chat": [jsonl(*[CHAT] * 12, {"messages": []}, {"messages": [{"role": "user", "content": "hi"}]},
                   {"messages": ["hi", {"role": "bot", "content": "x", "extra": 1, "name": 3, "weight": 7}]},
                   {"messages": [{"content": "x"}, {"role": "assistant", "content": ""}]})],
    "json": [b'{"instruction": "a"}', b'[{"instruction": "a", "output": "b"} {"x": 1}]', b'[{"instruction": "a", '
             b'"output": "b"}] extra', b'[{"instruction": "a", "output": "b"}, {"instruction": "a", "out'],
    "csv": [b"instruction,output\na,b\nc\n\"d,e\n", b"x,y\n1,2\n", b"instruction,output\na,b\nc,d,e\n"],
}


def problems_of(data: bytes, file_format: str) -> list[dict]:
    """The problems validation stores for a file."""
    report = validate([data], ValidationOptions(file_format="jsonl" if file_format == "chat" else file_format,
                                                max_record_bytes=200), lambda record: None)
    return report.as_dict()["errors"]


ALL_PROBLEMS = [problem for file_format, files in BAD_FILES.items() for data in files
                for problem in problems_of(data, file_format)]


def test_the_corpus_covers_the_kinds_of_problem():
    kinds = {problem["kind"] for problem in ALL_PROBLEMS}
    assert {"missing_key", "empty_value", "wrong_type", "json", "not_object", "unknown_format", "mixed_formats",
            "too_long", "encoding", "no_assistant", "invalid_role", "unknown_key", "invalid_weight", "csv",
            "empty_file", "too_few_examples", "missing_columns"} <= kinds, kinds


def test_every_problem_message_has_a_spanish_translation(app, translations):
    with app.test_request_context(), force_locale("es"):
        untranslated = [problem["message"] for problem in ALL_PROBLEMS
                        if translate(problem["message"]) == problem["message"]]
    assert not untranslated, f"no template in app/web/messages.py matches: {untranslated}"


def test_messages_are_translated_with_the_values_they_quote(app, translations):
    with app.test_request_context(), force_locale("es"):
        assert translate("'output' is missing") == "falta 'output'"
        assert translate("'messages[1].role' is \"bot\"; use system, user or assistant") == (
            "'messages[1].role' es \"bot\"; usa system, user o assistant")
        assert translate("invalid JSON: Expecting value (column 1)") == (
            "JSON no válido: se esperaba un valor (columna 1)")
        assert translate("'input' must be a string, not a number") == "'input' debe ser una cadena, no un número"
        assert translate("The file is larger than the dataset limit of 262144 bytes.") == (
            "El archivo supera el límite de 262.144 bytes por conjunto de datos.")
        assert translate("Must be a number between 0 and 1, not 1.5.") == "Debe ser un número entre 0 y 1, no 1,5."
        assert translate("a message no template knows") == "a message no template knows"
    with app.test_request_context(), force_locale("en"):
        assert translate("'output' is missing") == "'output' is missing"
