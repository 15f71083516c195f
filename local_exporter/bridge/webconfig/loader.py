"""A web config file -> a `WebConfig`, checked whole: the text (config.py), then the TLS files
it names, loaded once here (tls.py), so that a broken certificate is a problem with its key
before the server starts or a reload takes it."""

from __future__ import annotations

from pathlib import Path

from local_exporter.bridge.webconfig import tls
from local_exporter.bridge.webconfig.config import WebConfig, WebConfigError, parse
from local_exporter.common.fields import read_text


def load(path: Path) -> WebConfig:
    """Read and check `path`, the TLS files it names included."""
    try:
        text = read_text(path, "web config")
    except ValueError as exc:
        raise WebConfigError([str(exc)]) from None
    problems, config = parse(text, path.parent)
    if config is not None and config.tls is not None and not problems:
        try:
            tls.build_context(config.tls)
        except tls.TLSSetupError as exc:
            problems.add(("tls_server_config", exc.key), exc.reason)
    if problems or config is None:
        raise WebConfigError([p.render(str(path)) for p in problems.sorted()])
    return config
