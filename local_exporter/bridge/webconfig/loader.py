"""A web config file -> a `WebConfig`, checked whole: the text (config.py) and the TLS files it
names, loaded here (tls.py), so that a broken certificate is a problem with its key before the
server starts or a reload takes it, reported together with every other problem."""

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
    if config is not None and config.tls is not None:
        # The files are tried even when the text has problems: one check reports everything.
        tls_keys = [p.location[1:2] for p in problems.items if p.location[:1] == ("tls_server_config",)]
        reported = {key for (key,) in filter(None, tls_keys)}
        for failure in tls.setup_problems(config.tls, reported):
            problems.add(("tls_server_config", failure.key), failure.reason)
        if not problems:
            try:
                tls.build_context(config.tls)
            except tls.TLSSetupError as exc:
                problems.add(("tls_server_config", exc.key), exc.reason)
    if problems or config is None:
        raise WebConfigError([p.render(str(path)) for p in problems.sorted()])
    return config
