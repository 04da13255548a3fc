"""The operator against an API server that fails: transient 5xx and 429 on writes, and a crash (restart) in the
middle of building an avatar. It must retry, end with every child exactly once, and never leave half-built state
behind that a restart cannot finish.

Failures are injected into the kmock emulator (conftest.ApiServerEmulator.faults): the failing request is answered
with a Kubernetes `Status` error before anything is stored, as an overloaded API server or a webhook would."""

from __future__ import annotations

from .conftest import NAMESPACE, create_cr, eventually, get, owned, path, reason, requests
from .test_operator import CPU_SPEC, DEMO_CHILDREN, all_up, llm_secret


def _writes(api, method: str, url_path: str) -> int:
    return sum(1 for r in requests(api) if r.method.value == method and r.url.path == url_path)


async def test_transient_api_errors_are_retried_and_nothing_is_built_twice(api, operator):
    await llm_secret(api)
    api.faults = [
        ["POST", "/deployments", 500, 2],  # the runtime Deployment: two server errors, then it goes through
        ["POST", f"/namespaces/{NAMESPACE}/services", 429, 1],  # throttled once
        ["POST", "/configmaps", 503, 1],
    ]
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN, within_s=20, show=lambda: sorted(owned(api, uid)))
    assert all(fault[3] == 0 for fault in api.faults)  # every injected failure was hit ...
    assert _writes(api, "POST", path("Deployment")) == 3  # ... and retried: 2 failures, 1 create, no duplicate
    await all_up(api)
    await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "Ready", within_s=20)


async def test_a_restart_in_the_middle_of_building_finishes_the_job(api, operator):
    await llm_secret(api)
    # The Service cannot be created (an admission webhook down, say) and the operator is stopped meanwhile.
    api.faults = [["POST", f"/namespaces/{NAMESPACE}/services", 500, 10_000]]
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
    # Some children are built, then every reconcile stops at the Service (and is retried, backing off).
    await eventually(lambda: owned(api, uid) and _writes(api, "POST", path("Service")) >= 2, within_s=20)
    await operator.stop()
    partial = owned(api, uid)
    assert ("Service", "demo") not in partial and partial < DEMO_CHILDREN
    demo = get(api, "AvatarDeployment", "demo")
    assert demo.get("status", {}).get("conditions") is None or reason(api, "AvatarDeployment", "demo") != "Ready"

    api.faults = []  # the webhook is back; a new operator process starts
    # Kinds whose every child was already there: a restart must create none of them again.
    complete = {kind for kind, _ in partial} - {kind for kind, _ in DEMO_CHILDREN - partial}
    assert complete, sorted(partial)
    created_before = {kind: _writes(api, "POST", path(kind)) for kind in complete}
    await operator.start()
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN, within_s=20, show=lambda: sorted(owned(api, uid)))
    for kind, before in created_before.items():  # what existed was found and kept, not created again
        assert _writes(api, "POST", path(kind)) == before, kind
    await all_up(api)
    await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "Ready", within_s=20)


def test_retries_back_off_to_a_minute():
    from avatar_operator.handlers import retry_delay_s

    assert [retry_delay_s(n) for n in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
