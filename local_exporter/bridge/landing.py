"""The landing page at `/`: what this bridge serves, with links."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from local_exporter import __version__
from local_exporter.bridge.config import Config

_STYLE = "body{font-family:sans-serif;margin:2em}td,th{padding:.2em 1em;text-align:left}code{font-size:.95em}"


def render(config: Config) -> str:
    rows = "\n".join(
        f'<tr><td><a href="bridge?selector={quote(s.name)}">{escape(s.name)}</a></td>'
        f"<td>{escape(s.kind)}</td><td><code>{escape(s.source.describe())}</code></td>"
        f"<td>{s.timeout:g} s</td><td>{s.max_bytes}</td></tr>"
        for s in config.selectors
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>local_exporter</title><style>{_STYLE}</style></head>
<body>
<h1>local_exporter {escape(__version__)}</h1>
<p>Bridges host-local metrics sources to Prometheus. Scrape <code>/bridge?selector=NAME</code>.</p>
<h2>Selectors</h2>
<table><tr><th>selector</th><th>kind</th><th>source</th><th>timeout</th><th>max bytes</th></tr>
{rows}
</table>
<h2>Endpoints</h2>
<ul>
<li><a href="metrics">/metrics</a>: the bridge's own metrics</li>
<li><a href="-/healthy">/-/healthy</a>, <a href="-/ready">/-/ready</a>: health and readiness</li>
</ul>
</body></html>
"""
