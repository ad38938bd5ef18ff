"""How pages name stored codes (statuses, record formats, problem kinds, services) in the user's language.

The database and the JSON API keep the codes; only the pages show these labels (template filters).
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

STATUSES = {
    # jobs
    "queued": _l("queued"), "preparing": _l("preparing"), "running": _l("running"),
    "succeeded": _l("succeeded"), "failed": _l("failed"), "cancelled": _l("cancelled"),
    # datasets
    "processing": _l("processing"), "ready": _l("ready"), "invalid": _l("invalid"),
    # services and the Studio as a whole
    "up": _l("up"), "down": _l("down"),
    "healthy": _l("healthy"), "degraded": _l("degraded"), "unhealthy": _l("unhealthy"),
}
RECORD_FORMATS = {
    "chat": _l("chat"), "instruction": _l("instruction"),
    "prompt_completion": _l("prompt/completion"), "text": _l("text"), "preference": _l("preference"),
}
PROBLEM_KINDS = {
    "csv": _l("CSV"), "empty_file": _l("empty file"), "empty_value": _l("empty value"),
    "encoding": _l("encoding"), "invalid_role": _l("invalid role"), "invalid_weight": _l("invalid weight"),
    "json": _l("JSON"), "missing_columns": _l("missing columns"), "missing_key": _l("missing key"),
    "mixed_formats": _l("mixed formats"), "no_assistant": _l("no assistant message"),
    "not_object": _l("not an object"), "too_deep": _l("nested too deeply"),
    "too_few_examples": _l("too few examples"), "too_long": _l("too long"),
    "unknown_format": _l("unknown format"), "unknown_key": _l("unknown key"), "wrong_type": _l("wrong type"),
    "too_complex": _l("too complex"), "attempts": _l("validation interrupted"), "internal": _l("internal error"),
    "final_not_assistant": _l("answer not from the assistant"), "prompt_mismatch": _l("prompts differ"),
    "identical_answers": _l("identical answers"),
}
SCHEDULERS = {
    "linear": _l("linear"), "cosine": _l("cosine"), "constant": _l("constant"),
    "constant_with_warmup": _l("constant with warm-up"),
}
# A run's final metrics, as the compare page lists them.
METRICS = {
    "loss": _l("Training loss"), "eval_loss": _l("Evaluation loss"), "eval_accuracy": _l("Evaluation accuracy"),
    "eval_perplexity": _l("Perplexity"), "tokens_per_second": _l("Tokens per second"),
}
SERVICES = {
    "database": _l("database"), "storage": _l("storage"), "redis": _l("redis"), "workers": _l("workers"),
}


def labeller(table: dict):
    """A filter naming a code by table, the code itself when the table has no label for it."""
    def label(code) -> str:
        """The code's label in the request's language."""
        return str(table[code]) if code in table else code
    return label


def init_app(app) -> None:
    """Register the label filters."""
    for name, table in {"status_label": STATUSES, "format_label": RECORD_FORMATS,
                        "problem_label": PROBLEM_KINDS, "service_label": SERVICES,
                        "choice_label": SCHEDULERS, "metric_label": METRICS}.items():
        app.add_template_filter(labeller(table), name)
