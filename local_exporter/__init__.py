"""local_exporter: bridges host-local metrics sources (files, Unix sockets, DBus) to Prometheus."""

__version__ = "0.1.0"
