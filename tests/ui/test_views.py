"""The page helpers without a server: durations, parameter counts, the chart's geometry and its ticks."""
from __future__ import annotations

import math

from app.web.formatting import format_duration, format_parameters
from app.web.jobs.chart import LossChart, nice_ticks


def test_durations_read_like_a_person_would_say_them():
    assert [format_duration(s) for s in (None, 0.4, 45, 185, 7440)] == ["—", "0 s", "45 s", "3 min 05 s", "2 h 04 min"]


def test_parameter_counts_are_rounded_to_their_unit():
    assert [format_parameters(n) for n in (107_584, 494_032_768, 1_235_814_400, 999)] == ["108 K", "494 M", "1.2 B",
                                                                                           "999"]


def test_ticks_are_round_numbers_inside_the_range():
    assert nice_ticks(0, 300, 5) == [0, 100, 200, 300]
    assert nice_ticks(0.45, 2.1, 4) == [0.5, 1.0, 1.5, 2.0]
    assert nice_ticks(1, 1, 4) == [1]


def test_the_chart_maps_the_run_onto_its_plot_area():
    chart = LossChart(train=[(1, 2.0), (50, 1.0), (100, 0.5)], evaluation=[(100, 0.6)], total_steps=200)
    assert chart.x(0) == chart.left and chart.x(200) == chart.plot_right
    assert chart.y(2.0) < chart.y(1.0) < chart.y(0.5) <= chart.plot_bottom
    assert chart.train_path.count(",") == 3 and chart.train_dot == (chart.x(100), chart.y(0.5))
    assert [tick.label for tick in chart.x_ticks] == ["0", "50", "100", "150", "200"]
    assert chart.summary == ("Training loss from 2.0000 at step 1 to 0.5000 at step 100; "
                             "evaluation loss 0.6000 at step 100.")
    assert LossChart([], []).empty and not chart.empty


def test_the_polyline_passes_through_the_points_as_x_and_y_place_them():
    # The polyline's coordinates are computed inline and rounded by the format: the same text as the markers'.
    values = [(step, math.sin(step / 7) * 3.3 - 0.05 * step) for step in range(0, 997, 3)]
    for chart in (LossChart(values, [], total_steps=1000), LossChart(values[:1], values[5:9], total_steps=None),
                  LossChart([(step, -value) for step, value in values], [], total_steps=5000)):
        expected = [f"{chart.x(step)},{chart.y(value)}" for step, value in chart.train]
        assert chart.train_path.split() == expected
