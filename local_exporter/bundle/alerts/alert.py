"""One alert of the bundle, as a rule: the shape every alert group module builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_exporter.bundle.config import DEFAULT_ALERT_PREFIX, BundleConfig

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    expr: str
    summary: str
    description: str
    for_: str = "0m"
    #: Keep firing this long after the expression stops matching: for alerts whose expression
    #: reads an instant gauge that one failed scrape removes (its staleness marker).
    keep_firing_for: str = "0m"

    def rule(self, config: BundleConfig) -> dict[str, Any]:
        name = config.alert_prefix + self.name
        rule: dict[str, Any] = {"alert": name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        if self.keep_firing_for != "0m":
            rule["keep_firing_for"] = self.keep_firing_for
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": runbook_url(config, self.name),
        }
        return rule


def runbook_url(config: BundleConfig, name: str) -> str:
    """The runbook link of the alert `name` (without its prefix): the shipped runbooks' headings
    carry the default prefix, so `{runbook}` names them whatever prefix the alerts get."""
    return config.runbook_url_pattern.format(
        runbook=(DEFAULT_ALERT_PREFIX + name).lower(), alert=(config.alert_prefix + name).lower()
    )
