"""The deadline rule: min(selector timeout, scrape-timeout header − offset)."""

from __future__ import annotations

import pytest

from local_exporter.bridge.limits import BadScrapeTimeout, scrape_deadline


@pytest.mark.parametrize(
    ("timeout", "header", "offset", "expected"),
    [
        (5.0, None, 0.5, 5.0),  # no header: the selector's own timeout
        (5.0, "10", 0.5, 5.0),  # the selector is stricter
        (5.0, "2", 0.5, 1.5),  # Prometheus is stricter: answer before it gives up
        (5.0, "2.5", 0.0, 2.5),
        (5.0, "0.4", 0.5, 0.2),  # no room for the offset: half the header, still first
        (5.0, " 3 ", 0.5, 2.5),
    ],
)
def test_deadline(timeout: float, header: str | None, offset: float, expected: float) -> None:
    assert scrape_deadline(timeout, header, offset) == pytest.approx(expected)


@pytest.mark.parametrize("header", ["", "soon", "-1", "0", "nan", "inf", "1e999", "0x10"])
def test_bad_header_is_rejected_with_its_name(header: str) -> None:
    with pytest.raises(BadScrapeTimeout, match="X-Prometheus-Scrape-Timeout-Seconds"):
        scrape_deadline(5.0, header, 0.5)
