"""dbus-next's asyncio bus with two of its failures made ordinary errors, for every connection the
bridge and the simulator make.

- A bus that closes the connection during authentication (a dbus-daemon stopping, or restarting
  under a reboot) sends dbus-next 0.2.3 into a loop that never ends and never yields: its
  `_auth_readline` appends the empty reads of the closed socket forever, so the whole event loop
  freezes at full CPU, deadlines and signal handlers included. Here the end of the stream is an
  `EOFError`, as it is once connected.
- A connection that ends, or a connect that fails, leaves its socket open; here it is closed,
  so no descriptor outlives a connection.
"""

from __future__ import annotations

from dbus_next.aio.message_bus import MessageBus

#: Bytes per read of an auth line, as dbus-next reads them. The exchange is lock-step (the server
#: sends one line, then waits for the client's next), so no read takes more than the line.
_AUTH_READ = 2


class AuthenticationClosed(EOFError):
    """The bus closed the connection before authentication finished."""


class Bus(MessageBus):
    async def connect(self) -> Bus:
        """Connect, or leave the bus disconnected with its socket closed, whatever stopped the
        connect (an error, or the caller's deadline cancelling it)."""
        try:
            await super().connect()
        except BaseException:
            if not self._disconnected:  # once finalized, its socket is closed already
                self._user_disconnect = True  # the caller has the error: the disconnect future has none
                self._finalize(None)
            raise
        return self

    def _finalize(self, err: Exception | None = None) -> None:
        """The connection has ended (lost, or disconnected): its socket goes with it."""
        try:
            super()._finalize(err)  # type: ignore[no-untyped-call]
        finally:
            close_socket(self)

    async def _auth_readline(self) -> str:
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = await self._loop.sock_recv(self._sock, _AUTH_READ)
            if not chunk:
                raise AuthenticationClosed("the bus closed the connection during authentication")
            line += chunk
        return line[:-2].decode()

    def _setup_socket(self) -> None:
        try:
            super()._setup_socket()  # type: ignore[no-untyped-call]
        except BaseException:
            close_socket(self)
            raise


def close_socket(bus: MessageBus) -> None:
    """Close the bus's socket and the stream over it, which dbus-next leaves open on some paths."""
    for item in (getattr(bus, "_stream", None), getattr(bus, "_sock", None)):
        if item is not None:
            item.close()
