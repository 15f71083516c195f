"""What the update servers know of the releases, normalised: the vocabulary the `cincinnati`
and `nebraska` adapters serve (docs/metrics.md) and the bundle reads.

Every family is labelled `os` (`fedora-coreos`, `flatcar`) and `stream`: a Fedora CoreOS stream
(`stable`, `testing`, `next`) or a Flatcar channel (`stable`, `beta`, `alpha`, `lts`), the
value the hosts' own families carry, so the two join without relabelling.
"""

from __future__ import annotations

from local_exporter.agents.os_update import FEDORA_COREOS, FLATCAR

__all__ = ["FEDORA_COREOS", "FLATCAR"]

# Every release the server lists for the stream, and its place in the stream's order.
INFO = "os_release_info"
INDEX = "os_release_index"
# The stream's newest release: what every host on the stream should end up on.
NEWEST = "os_release_newest_info"
DEADEND = "os_release_deadend_info"
BARRIER = "os_release_barrier_info"
# The newest release's phased rollout (Cincinnati's updates metadata).
ROLLOUT_START = "os_release_rollout_start_timestamp_seconds"
ROLLOUT_DURATION = "os_release_rollout_duration_seconds"
ROLLOUT_START_SHARE = "os_release_rollout_start_share"
PLANNED_SHARE = "os_release_rollout_planned_share"
# A Flatcar channel's groups and their update policy (Nebraska).
GROUP_INFO = "os_release_group_info"
GROUP_UPDATES_ENABLED = "os_release_group_updates_enabled"
GROUP_SAFE_MODE = "os_release_group_safe_mode"
GROUP_OFFICE_HOURS = "os_release_group_office_hours"
GROUP_MAX_UPDATES = "os_release_group_max_updates_per_period"
GROUP_PERIOD = "os_release_group_period_seconds"
GROUP_UPDATE_TIMEOUT = "os_release_group_update_timeout_seconds"
GROUP_ROLLOUT_IN_PROGRESS = "os_release_group_rollout_in_progress"
# When the answer served was fetched from the server (a cached or last good one included).
FEED_UPDATED = "os_release_feed_updated_timestamp_seconds"
