"""Which compute adverts the coordinator accepts (skymesh.coordinator.inference.compute)."""

from __future__ import annotations

from typing import Any

import pytest

from skymesh.coordinator.inference.compute import _valid
from skymesh.wire.inference import ComputeAdvert, ModelOffer

OFFER = ModelOffer(name="m", kind="chat", context_length=2048, price_in=1.0, price_out=2.0)


def advert(**change: Any) -> ComputeAdvert:
    fields: dict[str, Any] = {"models": [OFFER], "cores": 4, "memory_bytes": 1 << 30}
    fields.update(change)
    return ComputeAdvert(**fields)


def test_a_sane_advert_is_accepted() -> None:
    assert _valid(advert()) is None


@pytest.mark.parametrize(
    "bad",
    [
        advert(models=[OFFER] * 65),
        advert(models=[ModelOffer(name="", kind="chat", context_length=1)]),
        advert(models=[ModelOffer(name="x" * 129, kind="chat", context_length=1)]),
        advert(models=[ModelOffer(name="m", kind="vision", context_length=1)]),
        advert(models=[ModelOffer(name="m", kind="chat", context_length=0)]),
        advert(models=[ModelOffer(name="m", kind="chat", context_length=1, price_in=-1)]),
        advert(latency_ms=float("nan")),
        advert(watts=-5.0),
        advert(concurrency=0),
        advert(queue_depth=-1),
    ],
)
def test_nonsense_adverts_are_refused(bad: ComputeAdvert) -> None:
    assert _valid(bad) is not None
