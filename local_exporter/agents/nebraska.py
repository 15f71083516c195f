"""Nebraska, Flatcar's update server, as its sources define its Prometheus metrics.

flatcar/nebraska main: backend/pkg/metrics/metrics.go (the families, refreshed every
NEBRASKA_METRICS_UPDATE_INTERVAL, 15 s by default) and backend/pkg/api/internal/dbreads/metrics.go
(what they count). Both are gauges set from SQL at each refresh:
- instances per (application, version, channel): every instance's latest reported version of
  the application, by its group's channel; a combination no instance has any more keeps its
  last value (the gauge is set, never deleted);
- failed updates per application: every error event (type 3, result 0) ever recorded, so it
  only grows.
"""

from __future__ import annotations

INSTANCES_PER_CHANNEL = "nebraska_application_instances_per_channel"
FAILED_UPDATES = "nebraska_failed_updates"
#: The application Flatcar's update_engine asks for (its app id's name in Nebraska).
FLATCAR_APPLICATION = "Flatcar Container Linux"
#: The port Nebraska serves its API, the Omaha endpoint and /metrics on.
PORT = 8000
