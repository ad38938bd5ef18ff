"""The domain's English messages (dataset problems, upload and job errors, backend names) in the page's language.

The validator, the services and the JSON API keep English text and stable codes; a page translates a message
when it shows it, by matching it against the English templates below: each is a catalog entry whose
%(name)s placeholders stand for the values the message quotes (line numbers, keys, sizes). The values
themselves are translated too when they are messages (a JSON error, a type name). A message no template
matches is shown as it is.
"""
from __future__ import annotations

import re
from functools import lru_cache

from flask_babel import gettext
from markupsafe import Markup

from app.web.formatting import format_number


def N_(message: str) -> str:
    """Mark message for extraction only; it is translated when shown."""
    return message


TEMPLATES = (
    # the readers: JSONL, JSON arrays, CSV
    N_("the line is longer than %(limit)s bytes"),
    N_("the row is longer than %(limit)s bytes"),
    N_("the record is longer than %(limit)s characters"),
    N_("not valid UTF-8 (byte %(byte)s of the line)"),
    N_("not valid UTF-8 (byte %(byte)s of the row)"),
    N_("the file is not valid UTF-8 from this line on"),
    N_("invalid JSON: %(detail)s (column %(column)s)"),
    N_("invalid JSON: the file ends inside this record"),
    N_("invalid JSON: %(detail)s"),
    N_("the record is nested too deeply"),
    N_("the record nests deeper than %(limit)s levels"),
    N_("the record holds more than %(limit)s values"),
    N_("a JSON file must hold one array of records: expected '['"),
    N_("unexpected content after the closing ']'"),
    N_("expected ',' or ']' after a record"),
    N_("the header has more than %(limit)s columns"),
    N_("the row has %(width)s columns; the header has %(header)s"),
    N_("unreadable CSV row: %(detail)s"),
    # Python's JSON decoder, quoted by "invalid JSON: …"
    N_("Expecting value"),
    N_("Expecting ',' delimiter"),
    N_("Expecting ':' delimiter"),
    N_("Expecting property name enclosed in double quotes"),
    N_("Unterminated string"),
    N_("Unterminated string starting at"),
    N_("Invalid control character at"),
    N_("Invalid \\escape"),
    N_("Invalid \\escape: %(detail)s"),
    N_("Invalid \\uXXXX escape"),
    N_("Extra data"),
    N_("Illegal trailing comma before end of array"),
    N_("Illegal trailing comma before end of object"),
    # the record formats (trainer/records.py) and the file as a whole
    N_("'%(key)s' is missing"),
    N_("'%(key)s' must be a string, not %(type)s"),
    N_("'%(key)s' is empty"),
    N_("'%(key)s' must be a string"),
    N_("'%(key)s' must be an object, not %(type)s"),
    N_("'%(key)s' must be a non-empty array of {role, content} objects"),
    N_("'%(key)s' is not a message key (use role, content, name, weight)"),
    N_("'%(key)s' is %(value)s; use system, user or assistant"),
    N_("'%(key)s' must be 0 or 1"),
    N_("there is no assistant message to learn from"),
    N_("a record must be a JSON object, not %(type)s"),
    N_("this record is %(format)s but the file is %(file_format)s (from line %(line)s)"),
    N_("the header has columns %(keys)s; expected %(expected)s"),
    N_("the record has keys %(keys)s; expected %(expected)s"),
    N_("messages; instruction and output; prompt and completion; or text"),
    N_("the file holds no records"),
    N_("%(valid)s valid examples; at least %(needed)s are needed"),
    N_("Validation did not finish after %(attempts)s attempts; the last failure: %(detail)s"),
    N_("an object"), N_("an array"), N_("a string"), N_("a boolean"), N_("a number"), N_("missing"), N_("none"),
    N_("chat"), N_("instruction"), N_("prompt_completion"), N_("text"),
    # the statistics' notes
    N_("estimated as characters ÷ 4, plus 4 per chat message (no tokenizer is available offline)"),
    N_("exact for the first %(count)s records, then counted with a probabilistic filter that may take a few "
       "distinct records for duplicates"),
    # uploads
    N_("The file is larger than the dataset limit of %(limit)s bytes."),
    N_("The upload ended inside the file part."),
    N_("A form field is too large."),
    N_("Attach the dataset as the 'file' part of the form."),
    N_("The upload form has invalid fields."),
    N_("Use at most %(count)s characters."),
    N_("Use one of %(choices)s, or leave it empty to detect it."),
    N_("Use a whole number of tokens between %(low)s and %(high)s."),
    N_("Object storage failed while receiving the file; nothing was saved."),
    N_("The dataset is used by a job that has not finished; cancel it or wait."),
    # the new-job form and the services behind it
    N_("The job has invalid fields."),
    N_("The model may not fit the GPU; send ignore_memory_warning=true to try anyway."),
    N_("No such dataset among yours."),
    N_("The dataset is %(status)s; only a ready dataset can be trained on."),
    N_("Choose a model from the catalog or give a Hugging Face id like owner/name."),
    N_("Use one of %(choices)s."),
    N_("Use one of the enabled backends: %(choices)s."),
    # the hyperparameter rules (trainer/config.py), as the form shows them beside their field
    N_("Must be %(rule)s, not %(value)s."),
    N_("a number between 0 and 1"), N_("a number in [0, 1)"), N_("a number of at least 0"),
    N_("a number of at least 0 (0 disables clipping)"), N_("one of %(choices)s"), N_("an integer of at least 0"),
    N_("an integer of at least 16"), N_("a list of module names"), N_("a number greater than 0"),
    # quotas
    N_("You have %(count)s active jobs, your limit; wait for one to end or cancel one."),
    N_("This upload would exceed your storage limit; delete datasets or jobs first."),
    N_("You reached your limit of %(count)s uploads in 24 hours."),
    # the backends
    N_("This server (local worker)"),
    N_("Kaggle (free T4 GPU)"),
    N_("Kaggle credentials are missing: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN."),
    N_("The kaggle package is not installed: pip install -r requirements.txt."),
    # webhook endpoints (app/webhooks)
    N_("The webhook URL is refused: %(reason)s."),
    N_("use an http:// or https:// URL with a host"),
    N_("the host does not resolve (%(error)s)"),
    N_("the host resolves to %(address)s, a private, loopback or link-local address"),
    N_("url must be a string of at most %(count)s characters."),
    N_("You have %(count)s endpoints, the most allowed."),
    # page-level errors
    N_("The form expired or was not sent from this site; reload and retry."),
    N_("The database is unavailable; try again shortly."),
    N_("Something went wrong on our side."),
    N_("not found"), N_("artifact not found"), N_("token not found"), N_("dataset not found"), N_("job not found"),
    N_("record %(position)s not found: the dataset has %(count)s records"),
)
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
NUMBER = re.compile(r"-?\d+(\.\d+)?")


@lru_cache(maxsize=1)
def _patterns() -> tuple[dict, list]:
    """The templates without placeholders by text, and those with them as anchored patterns (longest first)."""
    exact, patterns = {}, []
    for template in TEMPLATES:
        if "%(" not in template:
            exact[template] = template
            continue
        parts = PLACEHOLDER.split(template)
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
        patterns.append((re.compile(regex + r"\Z", re.DOTALL), template))
    patterns.sort(key=lambda pair: len(pair[1]), reverse=True)
    return exact, patterns


def translate(message) -> str:
    """message in the request's language when a template matches it, else message itself."""
    if message is None or isinstance(message, Markup):
        return message
    text = str(getattr(message, "message", message))
    exact, patterns = _patterns()
    if text in exact:
        return gettext(exact[text])
    for pattern, template in patterns:
        found = pattern.match(text)
        if found:
            values = {name: _value(value) for name, value in found.groupdict().items()}
            return gettext(template, **values)
    return text


def _value(text: str) -> str:
    """A value quoted by a message as the page shows it: a number with the language's separators, a message
    translated."""
    number = NUMBER.fullmatch(text)
    if number:  # as many decimals as the message quoted
        return format_number(float(text), len(number.group(1) or ".") - 1)
    return translate(text)


def init_app(app) -> None:
    """Register the filter that shows a domain message in the page's language."""
    app.add_template_filter(translate, "domain_text")
