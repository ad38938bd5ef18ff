"""Numbers, sizes, percentages and dates as each language writes them."""
from __future__ import annotations

import datetime

import pytest
from flask_babel import force_locale

from app.web import formatting

MOMENT = datetime.datetime(2026, 12, 1, 21, 4, 5)


@pytest.mark.parametrize(("language", "expected"), [
    ("en", ["12,345", "0.1235", "45%", "1.5 MB", "999 B", "1.2 B", "494 M", "Dec 1, 2026 21:04 UTC",
            "Dec 1, 2026 21:04"]),
    ("es", ["12.345", "0,1235", "45 %", "1,5 MB", "999 B", "1,2 B", "494 M", "1 dic 2026 21:04 UTC",
            "1 dic 2026 21:04"]),
])
def test_values_are_written_the_way_the_language_writes_them(app, language, expected):
    with app.test_request_context(), force_locale(language):
        shown = [formatting.format_number(12345), formatting.format_number(0.123456, 4),
                 formatting.format_percentage(45.2), formatting.format_size(1_500_000), formatting.format_size(999),
                 formatting.format_parameters(1_235_814_400), formatting.format_parameters(494_032_768),
                 formatting.format_datetime(MOMENT), formatting.format_datetime(MOMENT, with_zone=False)]
    assert [value.replace("\xa0", " ") for value in shown] == expected


def test_percentages_keep_the_decimals_asked_for(app):
    with app.test_request_context(), force_locale("es"):
        assert formatting.format_percentage(45.26, 1).replace("\xa0", " ") == "45,3 %"
    with app.test_request_context(), force_locale("en"):
        assert formatting.format_percentage(45.26, 1) == "45.3%" and formatting.format_percentage(50, 1) == "50.0%"


def test_iso_timestamps_from_backends_are_shown_in_utc(app):
    with app.test_request_context(), force_locale("es"):
        assert formatting.format_iso_datetime("2026-12-01T23:04:05+02:00") == "1 dic 2026 21:04 UTC"
        assert formatting.format_iso_datetime(None) == "—"


def test_outside_a_request_the_formats_are_english():
    assert formatting.format_number(0.5, 2) == "0.50" and formatting.format_size(2_000_000_000) == "2.0 GB"
