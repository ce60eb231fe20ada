"""The durability model: the whitepaper's number, and Monte-Carlo against the closed forms."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from skymesh.durability.model import (
    ModelParams,
    binomial_loss,
    poisson_durability,
    poisson_loss,
    simulate,
    threshold_loss_per_year,
    whitepaper_loss_per_year,
)


def test_whitepaper_20_of_40_at_10_percent_monthly_churn() -> None:
    # Storj whitepaper §3.4: 99.9999998% durability.
    d = poisson_durability(40, 20, 0.1)
    assert f"{100 * d:.7f}" == "99.9999998"
    assert poisson_loss(40, 20, 0.1) == pytest.approx(1 - d, rel=1e-6)
    # Monthly repair at 10% monthly churn is the same trial.
    p = ModelParams(20, 40, 40, 40, failure_rate=0.1, repair_hours=730.5)
    assert p.window_failure == pytest.approx(0.1)
    assert whitepaper_loss_per_year(p) == pytest.approx(12 * poisson_loss(40, 20, 0.1), rel=1e-6)


def test_poisson_overstates_the_exact_binomial_tail_and_converges_to_it() -> None:
    assert poisson_loss(6, 4, 0.066) > 1.4 * binomial_loss(6, 4, 0.066)
    assert poisson_loss(300, 297, 0.0033) == pytest.approx(
        binomial_loss(300, 297, 0.0033), rel=0.02
    )
    assert poisson_loss(14, 8, 0.0) == 0.0


def test_monte_carlo_agrees_with_the_closed_form() -> None:
    # Losses frequent enough to count (~4 per segment-year); many pieces and a small
    # window failure probability, where the whitepaper's Poisson form is accurate.
    p = ModelParams(297, 300, 301, 301, failure_rate=0.1, repair_hours=24, segments=1000)
    started = time.perf_counter()
    result = simulate(p)
    assert time.perf_counter() - started < 2.0
    assert result.losses > 3000
    half = 2.58 * math.sqrt(result.losses) / result.segment_years  # 99%
    for closed in (threshold_loss_per_year(p), threshold_loss_per_year(p, exact=True)):
        assert abs(closed.loss_rate - result.loss_rate) < half
        assert closed.traffic_share == pytest.approx(result.traffic_share, rel=0.05)


def test_small_scheme_matches_the_exact_form() -> None:
    p = ModelParams(4, 6, 8, 8, failure_rate=0.5, repair_hours=72, segments=4000, years=2)
    result = simulate(p)
    lo, hi = result.interval
    assert lo <= threshold_loss_per_year(p, exact=True).loss_rate <= hi


def test_default_scheme_loses_nothing_measurable_and_runs_are_reproducible() -> None:
    p = ModelParams(8, 10, 12, 14, failure_rate=0.02, repair_hours=6, segments=2000, years=2)
    a, b = simulate(p), simulate(p)
    assert a == b and a.losses == 0 and a.repairs > 0
    assert threshold_loss_per_year(p).loss_per_year < 1e-8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 5, "repair": 4}, "k <= repair"),
        ({"optimal": 4, "repair": 4, "total": 4}, "optimal must exceed k"),
        ({"nodes": 10}, "distinct nodes"),
        ({"failure_rate": 1.0}, "fraction"),
        ({"repair_hours": 0}, "repair hours"),
    ],
)
def test_bad_parameters_say_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"k": 4, "repair": 5, "optimal": 6, "total": 12}
    p = ModelParams(**{**base, **kwargs})
    with pytest.raises(ValueError, match=message):
        p.check()


def test_simulate_command() -> None:
    from typer.testing import CliRunner

    from skymesh.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["simulate", "--scheme", "8/10/12/12", "--segments", "200", "--years", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "Monte-Carlo" in result.output and "whitepaper" in result.output
    bad = runner.invoke(app, ["simulate", "--scheme", "8/10"])
    assert bad.exit_code == 2 and "error:" in bad.output
