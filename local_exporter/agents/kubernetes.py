"""The Kubernetes reboot coordinators of Flatcar nodes, as their sources define what Prometheus
can see of them.

FLUO (flatcar/flatcar-linux-update-operator 8dd83d7, pkg/constants/constants.go and
pkg/agent/agent.go): its agent mirrors update_engine's status into node annotations (changed
only when the operation changes) and sets `reboot-needed` at NEED_REBOOT; the operator grants
`reboot-ok`; the agent sets `reboot-in-progress` while it drains and reboots. FLUO exports no
metrics: kube-state-metrics exposes the annotations it is allowed to, as labels of
`kube_node_annotations` (`annotation_` and the key with every other character than a letter,
digit or `_` made `_`), with `--metric-annotations-allowlist=nodes=[KEY,...]`.

Kured (kubereboot/kured 51220cc, cmd/kured/main.go): `kured_reboot_required{node}` is 1 while
its sentinel exists (`/var/run/reboot-required`, which Flatcar's postinstall touches), checked
every minute.
"""

from __future__ import annotations

import re

FLUO_PREFIX = "flatcar-linux-update.v1.flatcar-linux.net/"
#: The annotations the bundle reads (all "true"/"false" but status).
REBOOT_NEEDED = FLUO_PREFIX + "reboot-needed"
REBOOT_IN_PROGRESS = FLUO_PREFIX + "reboot-in-progress"
REBOOT_OK = FLUO_PREFIX + "reboot-ok"
STATUS = FLUO_PREFIX + "status"
FLUO_ANNOTATIONS = (REBOOT_NEEDED, REBOOT_IN_PROGRESS, REBOOT_OK, STATUS)
NODE_ANNOTATIONS = "kube_node_annotations"
KURED_REBOOT_REQUIRED = "kured_reboot_required"


def annotation_label(key: str) -> str:
    """The label kube-state-metrics makes of an annotation key."""
    return "annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def allowlist() -> str:
    """kube-state-metrics' flag that exposes FLUO's annotations."""
    return f"--metric-annotations-allowlist=nodes=[{','.join(FLUO_ANNOTATIONS)}]"
