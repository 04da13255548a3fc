"""Session-aware annotations of the runtime pods: which pod a scale-down or a node drain may take — pure functions.

The operator reads every ready runtime pod's `avatar_sessions_active` (handlers.py, through the API server's pod
proxy, in the resync it does for `status.activeSessions`) and keeps these annotations in line with it:

- `controller.kubernetes.io/pod-deletion-cost` = the pod's live conversations: on a scale-down the ReplicaSet
  removes the pods with the lowest cost first, i.e. the emptiest. (Pods stay Ready while full on purpose: the
  ReplicaSet ranks NotReady pods before the deletion cost, so readiness-as-capacity would pick the busiest.)
- `cluster-autoscaler.kubernetes.io/safe-to-evict` = "false" while the pod holds a conversation, "true" when idle:
  the cluster autoscaler does not drain a node for consolidation under a live conversation.
- `karpenter.sh/do-not-disrupt` = "true" while it holds one, absent when idle: the same for Karpenter.

The operator patches these, not the runtime itself: the operator already reads the counts, so the runtime pods
need no ServiceAccount token and no RBAC at all. The price: the values lag by up to one resync interval (30 s).
"""

from __future__ import annotations

from collections.abc import Mapping

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


def pod_annotations(active: int) -> dict[str, str | None]:
    """The annotations a runtime pod with `active` live conversations should carry (None = absent)."""
    busy = active > 0
    return {
        DELETION_COST: str(active),
        SAFE_TO_EVICT: "false" if busy else "true",
        DO_NOT_DISRUPT: "true" if busy else None,
    }


def annotation_patch(current: Mapping[str, str] | None, active: int) -> dict[str, str | None] | None:
    """The `metadata.annotations` of a JSON merge patch that brings `current` to `pod_annotations(active)`
    (null removes a key); None when nothing differs, so an unchanged pod costs no write."""
    current = current or {}
    changes = {
        key: value
        for key, value in pod_annotations(active).items()
        if (value is None and key in current) or (value is not None and current.get(key) != value)
    }
    return changes or None
