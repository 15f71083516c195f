"""The web config file (`serve --web.config.file`), in the exporter-toolkit format every
Prometheus exporter reads: TLS and client certificates, bcrypt basic auth, security headers and
a rate limit.

    config.py     the YAML file -> a frozen `WebConfig`, every problem with its key and line
    tls.py        `WebConfig` -> an `ssl.SSLContext`; the context that follows rotations
    basic_auth.py bcrypt checks off the event loop, cached, the same work for unknown users
    rate_limit.py the token bucket behind `rate_limit`
    guard.py      the running state: re-reads the file on change, the middleware that applies it
"""
