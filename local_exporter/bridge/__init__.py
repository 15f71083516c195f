"""The daemon that runs on each host: `local-exporter serve`.

It answers `GET /bridge?selector=NAME` from the one source the selector names, and serves its
own metrics. Nothing here imports the bundle, the simulator or the demo (tests/test_layers.py).
"""
