"""`kind = "update_engine"` against a private dbus-daemon serving the simulated update_engine
(the real bus name, object path, interface, GetStatus signature and StatusUpdate signal:
agents/update_engine.py, from flatcar/update_engine src/update_engine/update_engine.xml and
update_attempter.cc), with the release, update.conf and locksmith's file on disk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from dbus_next.message import Message
from prometheus_client import CollectorRegistry

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.bridge import config
from local_exporter.bridge.sources import update_engine as source
from local_exporter.sim.update_engine import serve_update_engine
from tests.support.bridges import Families, bridge_app, scrape_families, unavailable_until_served, until_read
from tests.support.dbus import DBusDaemon

AiohttpClient = Callable[[Application], Awaitable[TestClient]]
CHECKED = 1_765_000_000


def _files(directory: Path, *, coordinator: str | None = None, update_conf: str = "GROUP=beta\n") -> str:
    (directory / "update.conf").write_text(update_conf)
    (directory / "default-update.conf").write_text(
        "GROUP=stable\nSERVER=https://public.update.flatcar-linux.net/v1/update/\n"
    )
    (directory / "release").write_text(
        "FLATCAR_RELEASE_VERSION=4152.2.0\nFLATCAR_RELEASE_BOARD=amd64-usr\nFLATCAR_RELEASE_APPID={e96281a6-d1af-4bde-9a0a-97b76e56dc57}\n"
    )
    if coordinator is not None:
        (directory / "coordinator.conf").write_text(coordinator)
    return (
        f'update_conf = "{directory}/update.conf"\ndefault_update_conf = "{directory}/default-update.conf"\n'
        f'release_file = "{directory}/release"\ncoordinator_file = "{directory}/coordinator.conf"\n'
        f'no_update_file = "{directory}/noupdate"\n'
    )


def _selector(bus: DBusDaemon, directory: Path, extra: str = "", **files: str) -> str:
    return f'[bridge.selectors.ue]\nkind = "update_engine"\nbus_address = "{bus.address}"\n{_files(directory, **files)}{extra}'


async def _scrape(client: TestClient) -> tuple[int, Families]:
    return await scrape_families(client, "ue")


async def test_the_status_the_release_the_config_and_the_coordinator_are_served(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_update_engine(dbus_bus.address, Status(last_checked_time=CHECKED))
    coordinator = locksmith.render(locksmith.ETCD_LOCK, locksmith.RUNNING)
    update_conf = "GROUP=beta\nSERVER=https://fleet:s3cret@nebraska.example.com:8443/v1/update/?token=x\n"
    try:
        client = await aiohttp_client(
            bridge_app(_selector(dbus_bus, short_dir, coordinator=coordinator, update_conf=update_conf))
        )
        status, families = await _scrape(client)
        assert status == 200
        assert families["update_engine_status_info"] == [({"operation": api.IDLE}, 1.0)]
        assert families["update_engine_last_checked_timestamp_seconds"] == [({}, float(CHECKED))]
        assert families["update_engine_progress_ratio"] == [({}, 0.0)]
        assert "update_engine_new_version_info" not in families  # "0.0.0": nothing under way
        assert families["update_engine_release_info"] == [({"version": "4152.2.0", "board": "amd64-usr"}, 1.0)]
        # GROUP from /etc/flatcar/update.conf before /usr/share's; the server without credentials.
        assert families["update_engine_config_info"] == [
            ({"group": "beta", "server": "https://nebraska.example.com:8443/v1/update/"}, 1.0)
        ]
        assert families["update_engine_coordinator_info"] == [
            ({"name": "locksmithd", "strategy": "etcd-lock", "state": "running"}, 1.0)
        ]
        # Every operation listed from the start, so that rates work from the first scrape.
        transitions = dict((s[0]["operation"], s[1]) for s in families["update_engine_status_transitions"])
        assert set(transitions) == set(api.STATUSES) and set(transitions.values()) == {0.0}
    finally:
        await service.close()


async def test_short_statuses_are_counted_by_signal_without_a_call_per_scrape(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_update_engine(dbus_bus.address, Status(last_checked_time=CHECKED))
    calls = 0
    handle = service.handle

    def counting(msg: Message) -> bool:
        nonlocal calls
        calls += msg.member == api.GET_STATUS
        return handle(msg)

    service.bus._user_message_handlers[0] = counting  # the service's own handler, counted
    try:
        client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
        assert (await _scrape(client))[0] == 200
        # A check that fails: the error event is sent, then the agent is idle again, all between
        # two scrapes (update_attempter.cc: CHECKING -> REPORTING_ERROR_EVENT -> IDLE).
        service.update(operation=api.CHECKING)
        service.update(operation=api.REPORTING_ERROR)
        service.update(operation=api.IDLE)

        async def errors() -> float:
            families = (await _scrape(client))[1]
            counted = dict((s[0]["operation"], s[1]) for s in families["update_engine_status_transitions"])
            return counted[api.REPORTING_ERROR]

        await until_read(errors, 1.0)
        families = (await _scrape(client))[1]
        assert families["update_engine_status_info"] == [({"operation": api.IDLE}, 1.0)]
        assert families["update_engine_status_signals"] == [({}, 3.0)]
        # An update found and downloading: the target version and the progress, by signal.
        service.update(operation=api.CHECKING)
        service.update(operation=api.UPDATE_AVAILABLE, new_version="4230.2.1", new_size=480_000_000)
        service.update(operation=api.DOWNLOADING, progress=0.42)

        async def progress() -> tuple[list, list]:
            families = (await _scrape(client))[1]
            return families["update_engine_progress_ratio"], families.get("update_engine_new_version_info", [])

        await until_read(progress, ([({}, 0.42)], [({"version": "4230.2.1"}, 1.0)]))
        assert calls == 1  # one read at the first scrape, everything else by signal
    finally:
        await service.close()


async def test_not_on_the_bus_is_503_until_update_engine_appears(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    registry = CollectorRegistry()
    client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir), registry))
    reason = (
        "selector ue: unavailable: update_engine is not reachable on the bus: read com.coreos.update1: "
        "org.freedesktop.DBus.Error.ServiceUnknown"
    )
    await unavailable_until_served(
        client, registry, "ue", reason, lambda: serve_update_engine(dbus_bus.address, Status())
    )


async def test_a_restarted_daemon_is_read_again_and_the_target_is_kept(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    installed = Status(last_checked_time=CHECKED, operation=api.NEED_REBOOT, new_version="4230.2.1", new_size=1)
    service = await serve_update_engine(dbus_bus.address, installed)
    client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
    try:
        families = (await _scrape(client))[1]
        assert families["update_engine_new_version_info"] == [({"version": "4230.2.1"}, 1.0)]
        await service.close()
        # A restart finds the completed marker: NEED_REBOOT again, but "0.0.0" and no check time
        # (update_attempter.cc: the constructor restores only the status).
        service = await serve_update_engine(dbus_bus.address, Status(operation=api.NEED_REBOOT))

        async def checked() -> list:
            return (await _scrape(client))[1].get("update_engine_last_checked_timestamp_seconds", [])

        await until_read(checked, [])
        families = (await _scrape(client))[1]
        assert families["update_engine_status_info"] == [({"operation": api.NEED_REBOOT}, 1.0)]
        assert families["update_engine_new_version_info"] == [({"version": "4230.2.1"}, 1.0)]
    finally:
        await service.close()


async def test_a_status_of_the_wrong_shape_is_a_bad_payload(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_update_engine(dbus_bus.address, Status())

    def broken(msg: Message) -> bool:
        if msg.member != api.GET_STATUS:
            return False
        service.bus.send(Message.new_method_return(msg, "xds", [0, 0.0, api.IDLE]))
        return True

    service.bus._user_message_handlers[0] = broken
    try:
        client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
        status, body = await _scrape(client)
        assert status == 502
        assert body["reason"][0][0]["text"] == (
            "selector ue: bad_payload: com.coreos.update1: status signature is 'xds', expected 'xdssx'\n"
        )
    finally:
        await service.close()


# --- what the changes tell: pure --------------------------------------------------------------


def _seen(*statuses: Status) -> source.Followed:
    followed = None
    for at, status in enumerate(statuses):
        followed = source.follow(followed, status, ":1.7", 1000.0 + at, signal=True)
    assert followed is not None
    return followed


def test_an_error_event_is_charged_to_the_activity_it_followed() -> None:
    # update_attempter.cc: a failed check CHECKING -> REPORTING_ERROR_EVENT -> IDLE, a failed
    # download or postinstall DOWNLOADING / FINALIZING -> REPORTING_ERROR_EVENT -> IDLE.
    check = _seen(Status(), Status(operation=api.CHECKING), Status(operation=api.REPORTING_ERROR), Status())
    assert check.failures == {"update_check": 1002.0} and dict(check.entered)[api.REPORTING_ERROR] == 1
    for during in (api.UPDATE_AVAILABLE, api.DOWNLOADING, api.FINALIZING):
        deploy = _seen(Status(), Status(operation=during), Status(operation=api.REPORTING_ERROR), Status())
        assert deploy.failures == {"deploy": 1002.0}, during


def test_a_check_that_ends_without_a_new_check_time_failed_even_if_its_event_was_missed() -> None:
    # Read by GetStatus only: CHECKING, then IDLE with last_checked_time unchanged.
    missed = _seen(
        Status(last_checked_time=CHECKED),
        Status(last_checked_time=CHECKED, operation=api.CHECKING),
        Status(last_checked_time=CHECKED),
    )
    assert missed.failures == {"update_check": 1002.0}
    # "No update" sets last_checked_time (omaha_request_action.cc: the request succeeded), and
    # leaves nothing to deploy.
    no_update = _seen(
        Status(last_checked_time=CHECKED),
        Status(last_checked_time=CHECKED, operation=api.CHECKING),
        Status(last_checked_time=CHECKED + 2700),
    )
    assert no_update.failures == {}
    assert no_update.successes == {"update_check": 1002.0, "deploy": 1002.0}
    assert no_update.last_check_success == CHECKED + 2700


def test_an_update_installed_is_a_deploy_that_succeeded() -> None:
    followed = _seen(
        Status(),
        Status(operation=api.DOWNLOADING, new_version="4230.2.1"),
        Status(operation=api.REPORTING_ERROR),
        Status(),
        Status(operation=api.UPDATE_AVAILABLE, new_version="4230.2.1"),
        Status(operation=api.FINALIZING, new_version="4230.2.1"),
        Status(operation=api.NEED_REBOOT, new_version="4230.2.1"),
    )
    assert followed.failures["deploy"] < followed.successes["deploy"] == 1006.0
    assert followed.target == "4230.2.1" and followed.since == 1006.0


def test_the_config_files_are_read_as_update_engine_reads_them() -> None:
    # simple_key_value_store.cc: split at the first '=', nothing trimmed, one pair of matching
    # quotes stripped, the last repeated key wins, lines without '=' skipped.
    assert api.parse_config('GROUP="beta"\nSERVER=http://x/?a=b\n# comment\nGROUP=alpha\n KEY = v') == {
        "GROUP": "alpha",
        "SERVER": "http://x/?a=b",
        " KEY ": " v",
    }
    # omaha_request_params.cc: each key from the first file that has it, an empty value too.
    files = [api.parse_config("SERVER=\n"), api.parse_config("SERVER=https://a/\nGROUP=lts\n")]
    assert api.lookup(files, "SERVER", api.DEFAULT_SERVER) == ""
    assert api.lookup(files, "GROUP", api.DEFAULT_GROUP) == "lts"
    assert api.lookup(files, "MISSING", api.DEFAULT_GROUP) == "stable"


@pytest.mark.parametrize(
    ("server", "noupdate", "disabled"),
    [
        ("disabled", False, True),
        (" Disabled", False, True),
        (api.DEFAULT_SERVER, False, False),
        (api.DEFAULT_SERVER, True, True),
    ],
)
def test_updates_are_off_by_the_documented_server_value_or_the_noupdate_file(
    short_dir: Path, server: str, noupdate: bool, disabled: bool
) -> None:
    paths = dict(source.FILE_KEYS)
    for key in ("update_conf", "default_update_conf", "release_file", "coordinator_file", "no_update_file"):
        paths[key] = str(short_dir / key)
    Path(paths["update_conf"]).write_text(f"SERVER={server}\n")
    if noupdate:
        Path(paths["no_update_file"]).write_text("")
    files = source.read_files(paths)
    assert files.updates_disabled is disabled
    assert files.coordinator is None and files.group == "stable"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("refresh = -1", "bridge.selectors.ue.refresh: must be"),
        ('coordinator_file = "run/x.conf"', "bridge.selectors.ue.coordinator_file: must be an absolute path"),
        ('bus = "user"', "bridge.selectors.ue.bus: must be one of"),
        ('method = "x"', "bridge.selectors.ue.method: unknown key"),
    ],
)
def test_config_problems_name_the_key(line: str, problem: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(f'[bridge.selectors.ue]\nkind = "update_engine"\n{line}\n', "test.toml")
    assert any(p.startswith(f"test.toml:3: {problem}") for p in caught.value.problems), caught.value.problems


def test_docs_metrics_md_describes_every_family(short_dir: Path) -> None:
    files = source.HostFiles("1", "b", "stable", "s", {}, {"NAME": "locksmithd"}, no_update=False)
    followed = _seen(Status(last_checked_time=CHECKED), Status(operation=api.NEED_REBOOT, new_version="2"))
    names = {family.name for family in source.families(followed, files)}
    documented = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    assert names and {name for name in names if f"`{name}`" not in documented} == set()


async def test_the_bus_going_away_and_coming_back_is_survived(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_update_engine(dbus_bus.address, Status(last_checked_time=CHECKED))
    client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
    assert (await _scrape(client))[0] == 200
    await service.close()
    dbus_bus.stop()  # the system bus is restarted under the bridge

    async def status() -> int:
        return (await _scrape(client))[0]

    await until_read(status, 503)
    dbus_bus.start()
    service = await serve_update_engine(dbus_bus.address, Status(last_checked_time=CHECKED, operation=api.CHECKING))
    try:
        # A new connection, subscribed again: the status read anew, then followed by signal.
        async def operation() -> list:
            return (await _scrape(client))[1].get("update_engine_status_info", [])

        await until_read(operation, [({"operation": api.CHECKING}, 1.0)])
        service.update(operation=api.REPORTING_ERROR)
        service.update(operation=api.IDLE)

        async def errors() -> float:
            families = (await _scrape(client))[1]
            return dict((s[0]["operation"], s[1]) for s in families["update_engine_status_transitions"])[
                api.REPORTING_ERROR
            ]

        await until_read(errors, 1.0)
    finally:
        await service.close()
