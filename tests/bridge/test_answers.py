"""What a scrape holds until its answer is written (bridge/answers.py), against real `serve`
processes and real clients: clients that never read hold at most `service.max_answer_bytes`,
later scrapes get a 503 saying so at once, the write deadline drops the non-readers and gives
their bytes back; `max_in_flight` counts file scrapes and coalesced ones too."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import (
    LOOPBACK,
    Child,
    free_port,
    http_get,
    local_exporter_args,
    poll,
    python_env,
    running,
    scraped,
    wait_http,
)

BIG = 8 * 1024 * 1024


def _big_exposition(path: Path, size: int = BIG) -> None:
    line = b"# TYPE big gauge\n"
    sample = b'big{filler="' + b"x" * 100 + b'"} 1\n'
    path.write_bytes(line + sample * ((size - len(line)) // len(sample)))


@contextlib.contextmanager
def _serving(tmp_path: Path, service: str, selectors: str) -> Iterator[tuple[str, Child]]:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n{service}\n[bridge.selectors]\n{selectors}')
    with running("serve", local_exporter_args("serve", "-c", str(config)), tmp_path, env=python_env()) as child:
        base = f"http://{LOOPBACK}:{port}"
        wait_http(f"{base}/-/ready", 20, watch=[child])
        yield base, child


def _non_reader(base: str, selector: str) -> socket.socket:
    """A client that asks for `selector` and never reads the answer."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel takes little of it either
    client.connect((host, int(port)))
    client.sendall(f"GET /bridge?selector={selector} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return client


def test_non_reading_clients_hold_at_most_the_budget_and_are_dropped_at_the_write_deadline(tmp_path: Path) -> None:
    _big_exposition(tmp_path / "big.prom")
    service = f"max_answer_bytes = {3 * BIG}\nwrite_timeout = 3\n"
    selectors = f'big = {{ kind = "file", path = "{tmp_path / "big.prom"}", max_bytes = {2 * BIG} }}\n'
    with _serving(tmp_path, service, selectors) as (base, _child):
        stalled = [_non_reader(base, "big") for _ in range(3)]
        try:
            poll(
                "three answers held",
                lambda: (scraped(base, "local_exporter_bridge_answer_bytes_held") >= 3 * (BIG - 200)) or None,
                10,
            )
            # The budget is spent: a scrape that would read is refused at once, with the reason.
            refused = http_get(f"{base}/bridge?selector=big")
            assert refused.status == 503
            assert refused.text.startswith("answers being written hold ") and "service.max_answer_bytes" in refused.text
            metrics = http_get(f"{base}/metrics").text
            assert 'local_exporter_bridge_rejected_requests_total{reason="answer_memory"} 1.0' in metrics
            # The write deadline drops them and gives their bytes back.
            poll(
                "three write timeouts",
                lambda: (scraped(base, "local_exporter_bridge_write_timeouts_total") == 3) or None,
                10,
            )
            assert scraped(base, "local_exporter_bridge_answer_bytes_held") == 0
            answer = http_get(f"{base}/bridge?selector=big", timeout=30)
            assert answer.status == 200 and len(answer.body) > BIG - 200
        finally:
            for client in stalled:
                client.close()


def test_one_answer_larger_than_the_budget_is_served_alone(tmp_path: Path) -> None:
    _big_exposition(tmp_path / "big.prom", 64 * 1024)
    selectors = f'big = {{ kind = "file", path = "{tmp_path / "big.prom"}" }}\n'
    with _serving(tmp_path, "max_answer_bytes = 1024\n", selectors) as (base, _child):
        assert http_get(f"{base}/bridge?selector=big").status == 200
        assert scraped(base, "local_exporter_bridge_answer_bytes_held") == 0


def test_max_in_flight_counts_file_scrapes_until_written(tmp_path: Path) -> None:
    _big_exposition(tmp_path / "big.prom")
    service = "max_in_flight = 2\nwrite_timeout = 30\n"
    selectors = f'big = {{ kind = "file", path = "{tmp_path / "big.prom"}", max_bytes = {2 * BIG} }}\n'
    with _serving(tmp_path, service, selectors) as (base, _child):
        stalled = [_non_reader(base, "big") for _ in range(2)]
        try:
            poll(
                "two answers held",
                lambda: (scraped(base, "local_exporter_bridge_answer_bytes_held") >= 2 * (BIG - 200)) or None,
                10,
            )
            refused = http_get(f"{base}/bridge?selector=big")
            assert refused.status == 503
            assert refused.text == "2 scrapes already being answered: try again later\n"
        finally:
            for client in stalled:
                client.close()
        # Gone clients give their slots back: the next scrape is answered.
        poll(
            "an answered scrape",
            lambda: (http_get(f"{base}/bridge?selector=big", timeout=30).status == 200) or None,
            10,
        )


@contextlib.contextmanager
def _slow_socket(path: Path, delay: float) -> Iterator[None]:
    """A Zincati-protocol socket that waits `delay` before writing its exposition."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(64)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return

            def answer(client: socket.socket = client) -> None:
                with client:
                    time.sleep(delay)
                    with contextlib.suppress(OSError):
                        client.sendall(b"# TYPE slow gauge\nslow 1\n")

            threading.Thread(target=answer, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_max_in_flight_counts_scrapes_that_join_a_coalesced_read(tmp_path: Path) -> None:
    path = tmp_path / "slow.sock"
    with _slow_socket(path, 2.0):
        selectors = f'slow = {{ kind = "uds", path = "{path}", timeout = 10 }}\n'
        with _serving(tmp_path, "max_in_flight = 2\n", selectors) as (base, _child):
            answers: list[int] = []
            waiting = [
                threading.Thread(
                    target=lambda: answers.append(http_get(f"{base}/bridge?selector=slow", timeout=10).status)
                )
                for _ in range(2)
            ]
            for thread in waiting:
                thread.start()
            poll(
                "two scrapes in flight",
                lambda: (scraped(base, 'local_exporter_bridge_in_flight_requests{selector="slow"}') == 2) or None,
                5,
            )
            # Two scrapes share one read; a third would join it, and is past the cap all the same.
            refused = http_get(f"{base}/bridge?selector=slow")
            assert refused.status == 503 and refused.text.startswith("2 scrapes already being answered")
            for thread in waiting:
                thread.join(10)
            assert answers == [200, 200]
            assert scraped(base, 'local_exporter_bridge_coalesced_requests_total{selector="slow"}') == 1
