"""`local-exporter example`: a working bridge in one command, with nothing installed on the host.

It writes a bundled Zincati exposition to a file, serves the same bytes on a Unix socket with
Zincati's protocol, writes a config in the original format that bridges both, and serves it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from aiohttp import web

from local_exporter.bridge import config as config_module
from local_exporter.bridge.app import make_app
from local_exporter.sim.promsock import start_promsock

CONFIG_TEMPLATE = """\
# Written by `local-exporter example`: the original local_exporter format, unchanged.
[service]
address = "{address}"
port = {port}
tls = false

[bridge.selectors]
# The bundled Zincati exposition, as a file and over Zincati's Unix-socket protocol.
zincati-file = {{ kind = "file", path = "{directory}/zincati.prom" }}
zincati = {{ kind = "uds", path = "{directory}/metrics.promsock", timeout = 3 }}
"""


def example_payload() -> bytes:
    return resources.files("local_exporter.agents").joinpath("examples/zincati.prom").read_bytes()


def build(directory: Path, address: str, port: int) -> tuple[web.Application, config_module.Config]:
    payload = example_payload()
    (directory / "zincati.prom").write_bytes(payload)
    config_path = directory / "config.toml"
    config_path.write_text(CONFIG_TEMPLATE.format(address=address, port=port, directory=directory))
    config = config_module.load(config_path)
    app = make_app(config)

    async def socket_server(app: web.Application) -> AsyncIterator[None]:
        server = await start_promsock(directory / "metrics.promsock", lambda: payload)
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()

    app.cleanup_ctx.append(socket_server)
    return app, config
