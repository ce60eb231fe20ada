"""How likely is a segment to be lost, and what does repair cost? A model, pure.

**Model.** A segment is stored as ``optimal`` pieces (uploads stop there), each on
its own node. Nodes fail independently and for good, at a constant rate: a
fraction ``f`` of them per month (or per year) is a failure rate
``mu = -ln(1 - f)`` per month, so each piece lives an exponential time. When a
failure leaves the segment with ``h <= repair`` healthy pieces, repair starts and
takes ``repair_hours``; when it finishes the segment is back at ``optimal``
pieces (the repairer downloads ``k`` pieces and uploads the missing ones,
including those lost while it ran). If the healthy count drops below ``k`` first,
the segment is lost (the simulation counts it and starts a fresh one).
Independence means the node count does not change the chance of loss; it sets
how many failures the network sees and how much data each one makes move.

**Monte-Carlo** (:func:`simulate`): that process, event by event, for
``segments`` segments over ``years`` each; losses per segment-year with a 95%
confidence interval, and repair traffic as a share of stored bytes per year.

**Closed forms.** Storj's whitepaper (§3.4) treats a repair period as a trial:
with each of ``n`` pieces failing in the period with probability ``p``, the
number of failures is about Poisson with ``lambda = p * n``, and the segment
survives the period when at most ``n - k`` fail::

    P(D) = e^-lambda * sum_{i <= n - k} lambda^i / i!          (poisson_durability)

20-of-40 pieces at 10% monthly churn with monthly repair gives 99.9999998%.
:func:`whitepaper_loss_per_year` applies it with ``n = total`` and the period =
the repair time, as if every lost piece were replaced by the end of each
period. :func:`threshold_loss_per_year` is the same formula fitted to the model
above: repair windows open at ``h0 = min(repair, optimal - 1)`` healthy pieces,
one per cycle of ``sum_{h=h0+1}^{optimal} 1/(h mu) + T``, and a window loses the
segment when more than ``h0 - k`` of its ``h0`` pieces fail within ``T``. It
is what the Monte-Carlo estimate converges to (with the exact binomial; the
Poisson form, used by default like the whitepaper, slightly overstates the loss
when ``h0`` is small).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

HOURS_PER_MONTH = 730.5  # 365.25 * 24 / 12
HOURS_PER_YEAR = 8766.0


@dataclass(frozen=True)
class ModelParams:
    """One scenario: a scheme, a network, how often nodes fail and how fast repair is."""

    k: int
    repair: int
    optimal: int
    total: int
    nodes: int = 1000
    failure_rate: float = 0.02  # fraction of nodes failing per month (or year, see below)
    per_year: bool = False  # failure_rate is per year instead of per month
    repair_hours: float = 6.0
    years: float = 1.0
    segments: int = 20_000
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`ValueError` naming what to fix."""
        if not 1 <= self.k <= self.repair <= self.optimal <= self.total:
            raise ValueError(
                f"scheme {self.k}/{self.repair}/{self.optimal}/{self.total}: need"
                " 1 <= k <= repair <= optimal <= total"
            )
        if self.optimal <= self.k:
            raise ValueError("optimal must exceed k, or one failure loses the segment")
        if self.nodes < self.total:
            raise ValueError(
                f"{self.nodes} nodes cannot hold {self.total} pieces on distinct nodes"
            )
        if not 0 < self.failure_rate < 1:
            raise ValueError("failure rate is a fraction of nodes in (0, 1)")
        if self.repair_hours <= 0 or self.years <= 0 or self.segments < 1:
            raise ValueError("repair hours and years must be > 0, segments >= 1")

    @property
    def mu(self) -> float:
        """Failure rate of one node (one piece), per hour."""
        period = HOURS_PER_YEAR if self.per_year else HOURS_PER_MONTH
        return -math.log1p(-self.failure_rate) / period

    @property
    def window_failure(self) -> float:
        """Probability a piece's node fails within one repair time."""
        return -math.expm1(-self.mu * self.repair_hours)


def poisson_durability(n: int, k: int, p: float) -> float:
    """The whitepaper's P(D): at most ``n - k`` of ``n`` pieces fail, failures ~ Poisson(p n)."""
    lam = p * n
    term = total = math.exp(-lam)
    for i in range(1, n - k + 1):
        term *= lam / i
        total += term
    return min(1.0, total)


def poisson_loss(n: int, k: int, p: float) -> float:
    """``1 - poisson_durability``, computed from the tail so tiny values keep their digits."""
    lam = p * n
    if lam == 0:
        return 0.0
    # sum_{i > n - k} e^-lam lam^i / i!, from the first term of the tail on.
    i = n - k + 1
    term = math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1))
    total = 0.0
    while term > total * 1e-17 and i < n - k + 10_000:
        total += term
        i += 1
        term *= lam / i
    return min(1.0, total)


def binomial_loss(n: int, k: int, p: float) -> float:
    """Exactly: more than ``n - k`` of ``n`` independent pieces fail, each with probability ``p``."""
    return min(
        1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n - k + 1, n + 1))
    )


def _per_year(loss_per_trial: float, trials_per_year: float) -> float:
    return -math.expm1(trials_per_year * math.log1p(-loss_per_trial)) if loss_per_trial < 1 else 1.0


def whitepaper_loss_per_year(p: ModelParams) -> float:
    """Poisson P(loss) per repair period with ``n = total``, compounded over a year."""
    return _per_year(poisson_loss(p.total, p.k, p.window_failure), HOURS_PER_YEAR / p.repair_hours)


@dataclass(frozen=True)
class ClosedForm:
    loss_rate: float  # expected losses per segment-year
    repairs_per_year: float  # per segment
    traffic_share: float  # repair bytes moved per year / bytes stored

    @property
    def loss_per_year(self) -> float:
        """Probability that a segment is lost within a year."""
        return -math.expm1(-self.loss_rate)


def threshold_loss_per_year(p: ModelParams, *, exact: bool = False) -> ClosedForm:
    """The model's loss rate: repair windows per year times the chance one loses the segment."""
    h0 = min(p.repair, p.optimal - 1)
    mu, t = p.mu, p.repair_hours
    cycle = sum(1 / (h * mu) for h in range(h0 + 1, p.optimal + 1)) + t
    q = p.window_failure
    lose = binomial_loss(h0, p.k, q) if exact else poisson_loss(h0, p.k, q)
    windows = HOURS_PER_YEAR / cycle
    moved = p.k + p.optimal - h0 * (1 - q)  # download k, upload what is missing at the end
    return ClosedForm(
        loss_rate=windows * lose,
        repairs_per_year=windows,
        traffic_share=windows * moved / p.optimal,
    )


@dataclass(frozen=True)
class SimResult:
    params: ModelParams
    segment_years: float
    losses: int
    repairs: int
    pieces_moved: int  # downloaded + uploaded by repair

    @property
    def loss_rate(self) -> float:
        """Losses per segment-year."""
        return self.losses / self.segment_years

    @property
    def loss_per_year(self) -> float:
        """Probability that a segment is lost within a year."""
        return -math.expm1(-self.loss_rate)

    @property
    def interval(self) -> tuple[float, float]:
        """95% interval of the loss rate (normal approximation of a Poisson count;
        the rule of three when nothing was lost)."""
        if self.losses == 0:
            return 0.0, 3.0 / self.segment_years
        half = 1.96 * math.sqrt(self.losses)
        return max(0.0, self.losses - half) / self.segment_years, (
            self.losses + half
        ) / self.segment_years

    @property
    def traffic_share(self) -> float:
        """Repair traffic per year as a share of the bytes stored (``optimal`` pieces a segment)."""
        return self.pieces_moved / (self.segment_years * self.params.optimal)

    @property
    def node_failures_per_year(self) -> float:
        return self.params.mu * HOURS_PER_YEAR * self.params.nodes


def simulate(p: ModelParams, progress: Callable[[int], None] | None = None) -> SimResult:
    """Run the model for ``p.segments`` segments over ``p.years`` each (seeded, reproducible).

    ``progress`` is told the count of segments done, about a hundred times a run.
    """
    p.check()
    step = max(1, p.segments // 100)
    rng = random.Random(p.seed)
    expo = rng.expovariate
    mu, k, repair, optimal, t = p.mu, p.k, p.repair, p.optimal, p.repair_hours
    horizon = p.years * HOURS_PER_YEAR
    losses = repairs = moved = 0
    for done in range(p.segments):
        if progress is not None and done % step == 0:
            progress(done)
        now, h, repair_done = 0.0, optimal, math.inf
        while True:
            fail_at = now + expo(h * mu)
            if repair_done <= fail_at:
                if repair_done > horizon:
                    break
                now = repair_done
                repairs += 1
                moved += k + (optimal - h)
                h, repair_done = optimal, math.inf
                continue
            if fail_at > horizon:
                break
            now = fail_at
            h -= 1
            if h < k:
                losses += 1
                h, repair_done = optimal, math.inf  # a fresh segment takes its place
            elif h <= repair and repair_done == math.inf:
                repair_done = now + t
    if progress is not None:
        progress(p.segments)
    return SimResult(
        params=p,
        segment_years=p.segments * p.years,
        losses=losses,
        repairs=repairs,
        pieces_moved=moved,
    )
