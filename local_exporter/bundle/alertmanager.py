"""The Alertmanager configuration and message templates, from the same BundleConfig as the rules.

Routing: notifications are grouped by alert name and cluster. The heartbeat goes to its own
dead man's switch receiver, re-sent every minute; then `critical` pages, `warning` opens a
ticket (muted during the maintenance window), `info` goes to a sink that notifies nobody. An
alert without a known severity (a rule outside this bundle, or a bug) falls through to
`default`, which files a ticket under its own receiver name so it stands out.

Inhibition: a critical alert silences the warning of the same name, cluster and host (fleet-wide
alerts have no `instance`, so for them the host matches trivially). While a host's bridge is
down nothing is known of it, so `BridgeDown` silences that host's other per-host alerts,
`AgentDown` included; `AgentDown` silences the same set but neither itself nor `BridgeDown`,
so no alert ever inhibits itself and two alerts never inhibit each other.
"""

from __future__ import annotations

from typing import Any

from local_exporter.bundle.alerts import alert_groups
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.yamltext import HEADER, body, comment, commented_out, document

CONFIG_PATH = "alertmanager/alertmanager.yml"
TEMPLATE_PATH = "alertmanager/templates/local_exporter.tmpl"
#: The names of the templates defined in TEMPLATE_PATH.
TITLE_TEMPLATE = "local_exporter.title"
TEXT_TEMPLATE = "local_exporter.text"

# Receiver names: the keys of a notification's `receiver` field.
DEFAULT, PAGER, TICKET, SINK, HEARTBEAT = "default", "pager", "ticket", "sink", "heartbeat"
RECEIVER_BY_SEVERITY = {"critical": PAGER, "warning": TICKET, "info": SINK}


def per_host_alerts(config: BundleConfig) -> list[str]:
    """The alerts about one host: those whose description names `$labels.instance`.

    Every per-host alert says which host it is about; fleet-wide alerts cannot (they aggregate
    `instance` away). tests/bundle/test_alertmanager.py checks this against the rule groups.
    """
    return [
        rule["alert"]
        for group in alert_groups(config)
        for rule in group["rules"]
        if "$labels.instance" in rule["annotations"]["description"]
    ]


def _names_regex(names: list[str]) -> str:
    return "|".join(names)


def route(config: BundleConfig) -> dict[str, Any]:
    prefix = config.alert_prefix
    routes: list[dict[str, Any]] = [
        {
            # The dead man's switch: the external receiver alerts when this stops arriving, so
            # it must come often and at once. It is severity info: match it before the sink.
            "receiver": HEARTBEAT,
            "matchers": [f'alertname="{prefix}Heartbeat"'],
            "group_wait": "0s",
            "group_interval": "1m",
            "repeat_interval": "1m",
        },
        {"receiver": PAGER, "matchers": ['severity="critical"'], "repeat_interval": "1h"},
        {
            "receiver": TICKET,
            "matchers": ['severity="warning"'],
            "repeat_interval": "12h",
            "mute_time_intervals": [config.maintenance.name],
        },
        {"receiver": SINK, "matchers": ['severity="info"'], "repeat_interval": "24h"},
    ]
    return {
        "receiver": DEFAULT,
        "group_by": ["alertname", config.cluster_label],
        "group_wait": config.group_wait,
        "group_interval": config.group_interval,
        "repeat_interval": "4h",
        "routes": routes,
    }


def inhibit_rules(config: BundleConfig) -> list[dict[str, Any]]:
    prefix = config.alert_prefix
    cluster = config.cluster_label
    bridge_down, agent_down = f"{prefix}BridgeDown", f"{prefix}AgentDown"
    per_host = per_host_alerts(config)
    return [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", cluster, "instance"],
        },
        {
            "source_matchers": [f'alertname="{bridge_down}"'],
            "target_matchers": [f'alertname=~"{_names_regex([a for a in per_host if a != bridge_down])}"'],
            "equal": [cluster, "instance"],
        },
        {
            "source_matchers": [f'alertname="{agent_down}"'],
            "target_matchers": [
                f'alertname=~"{_names_regex([a for a in per_host if a not in (bridge_down, agent_down)])}"'
            ],
            "equal": [cluster, "instance"],
        },
    ]


def time_intervals(config: BundleConfig) -> list[dict[str, Any]]:
    window = config.maintenance
    return [
        {
            "name": window.name,
            "time_intervals": [
                {
                    "weekdays": list(window.weekdays),
                    "times": [{"start_time": window.start_time, "end_time": window.end_time}],
                    "location": window.location,
                }
            ],
        }
    ]


def receivers(config: BundleConfig) -> list[dict[str, Any]]:
    urls = config.receivers

    def webhook(name: str, url: str, send_resolved: bool = True) -> dict[str, Any]:
        return {"name": name, "webhook_configs": [{"url": url, "send_resolved": send_resolved}]}

    return [
        webhook(DEFAULT, urls.ticket_url),
        webhook(PAGER, urls.pager_url),
        webhook(TICKET, urls.ticket_url),
        # A dead man's switch only needs the alert to keep arriving.
        webhook(HEARTBEAT, urls.heartbeat_url, send_resolved=False),
        # Notifies nobody: info alerts are for dashboards and the Alertmanager UI.
        {"name": SINK},
    ]


def template_call(name: str) -> str:
    """The Go template expression that renders the named template with the notification's data."""
    return '{{ template "' + name + '" . }}'


def example_receivers(config: BundleConfig) -> list[dict[str, Any]]:
    """Paging by email or PagerDuty: written commented out, with secrets read from files."""
    title, text = template_call(TITLE_TEMPLATE), template_call(TEXT_TEMPLATE)
    return [
        {
            "name": f"{PAGER}-email",
            "email_configs": [
                {
                    "to": "oncall@example.org",
                    "from": "alertmanager@example.org",
                    "smarthost": "smtp.example.org:587",
                    "auth_username": "alertmanager@example.org",
                    "auth_password_file": "/etc/alertmanager/secrets/smtp-password",
                    "send_resolved": True,
                    "headers": {"Subject": title},
                    "text": text,
                }
            ],
        },
        {
            "name": f"{PAGER}-pagerduty",
            "pagerduty_configs": [
                {
                    "routing_key_file": "/etc/alertmanager/secrets/pagerduty-routing-key",
                    "send_resolved": True,
                    "severity": "critical",
                    "description": title,
                    "details": {"alerts": text},
                }
            ],
        },
    ]


def config_data(config: BundleConfig) -> dict[str, Any]:
    """The configuration as data (what alertmanager.yml parses to)."""
    return {
        "route": route(config),
        "inhibit_rules": inhibit_rules(config),
        "time_intervals": time_intervals(config),
        "templates": ["templates/*.tmpl"],
        "receivers": receivers(config),
    }


def config_text(config: BundleConfig) -> str:
    """alertmanager.yml: `config_data` with comments, in a fixed order."""
    data = config_data(config)
    window = config.maintenance
    return document(
        [
            comment(
                "Alertmanager for the OS-update bundle (checked with `amtool check-config`).\n"
                "Grouped by alert name and cluster; the heartbeat goes to a dead man's switch; critical\n"
                "pages, warning opens a ticket, info goes nowhere, anything else goes to `default`."
            )
            + body({"route": data["route"]}),
            comment(
                "A critical alert silences the warning of the same name, cluster and host. While a host's\n"
                "bridge (or its agent) is down, that host's other alerts say nothing new: silence them."
            )
            + body({"inhibit_rules": data["inhibit_rules"]}),
            comment(
                f"Warnings are muted during planned maintenance ({', '.join(window.weekdays)} "
                f"{window.start_time}-{window.end_time} {window.location}), when reboots make rollout\n"
                "warnings expected; critical alerts page regardless. Change it in BundleConfig.maintenance."
            )
            + body({"time_intervals": data["time_intervals"]}),
            comment("Message templates for the receivers below (relative to this file).")
            + body({"templates": data["templates"]}),
            comment(
                "Webhooks by default (BundleConfig.receivers). To page by email or PagerDuty, uncomment\n"
                "an example at the end of this list and set the critical route's receiver to its name."
            )
            + body({"receivers": data["receivers"]})
            + commented_out(example_receivers(config)),
        ]
    )


_TEMPLATE = """\
{{/* @HEADER@ */}}

{{/* One line: an email subject, a page title. */}}
{{ define "@TITLE@" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}
{{- with index .CommonLabels "@CLUSTER@" }} ({{ . }}){{ end }}
{{- end }}

{{/* Every alert of the notification: what, where, why, and what to do. */}}
{{ define "@TEXT@" -}}
{{ range .Alerts -}}
{{ .Status | toUpper }} {{ .Labels.severity }}: {{ .Annotations.summary }}
{{ with .Labels.instance }}Host: {{ . }}
{{ end -}}
{{ .Annotations.description }}
{{ with .Annotations.runbook_url }}Runbook: {{ . }}
{{ end -}}
Since: {{ .StartsAt.UTC.Format "2006-01-02 15:04 UTC" }}
{{ with .GeneratorURL }}Source: {{ . }}
{{ end }}
{{ end -}}
{{- end }}
"""


def template_text(config: BundleConfig) -> str:
    """templates/local_exporter.tmpl: a one-line title and a per-alert text body."""
    replacements = {
        "@HEADER@": HEADER.removeprefix("# ").rstrip("\n"),
        "@TITLE@": TITLE_TEMPLATE,
        "@TEXT@": TEXT_TEMPLATE,
        "@CLUSTER@": config.cluster_label,
    }
    text = _TEMPLATE
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text
