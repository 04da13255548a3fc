# `helm test` for the gaussian-avatar chart (templates/tests/test-operator.yaml runs it with `python3 -c`).
# Env: HEALTH_URL (the operator's liveness endpoint), WATCH_NAMESPACES (comma-separated; "" = all namespaces).
import os
import sys
import time
import urllib.request

import kubernetes

GROUP, VERSION = "gaussianavatar.io", "v1alpha1"


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


if os.environ.get("KUBERNETES_SERVICE_HOST"):  # in the pod: its service account (the operator's)
    kubernetes.config.load_incluster_config()
else:  # tests/chart runs this script against the API emulator through $KUBECONFIG
    kubernetes.config.load_kube_config()
extensions = kubernetes.client.ApiextensionsV1Api()
objects = kubernetes.client.CustomObjectsApi()
for plural in ("avatardeployments", "avatarmodelcaches"):
    name = f"{plural}.{GROUP}"
    listed = extensions.list_custom_resource_definition(field_selector=f"metadata.name={name}").items
    crd = next((item for item in listed if item.metadata.name == name), None)
    conditions = {c.type: c.status for c in (crd.status.conditions or [])} if crd and crd.status else {}
    if conditions.get("Established") != "True":
        fail(f"CRD {name} is not established (crds.enabled=false? apply crds/ first): {conditions or 'absent'}")
    print(f"ok   CRD {name} established", flush=True)
    namespaces = [ns for ns in os.environ.get("WATCH_NAMESPACES", "").split(",") if ns]
    try:
        if namespaces:
            for namespace in namespaces:
                objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, limit=1)
        else:
            objects.list_cluster_custom_object(GROUP, VERSION, plural, limit=1)
    except kubernetes.client.ApiException as exc:
        fail(f"the operator's service account cannot list {plural} ({exc.status} {exc.reason}): check its RBAC")
    print(f"ok   the operator may list {plural} in {', '.join(namespaces) or 'all namespaces'}", flush=True)

url, deadline = os.environ["HEALTH_URL"], time.monotonic() + 60
while True:  # the operator may be (re)starting right after an install or upgrade
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            print(f"ok   operator liveness {url}: HTTP {response.status}", flush=True)
            break
    except OSError as exc:
        if time.monotonic() > deadline:
            fail(f"operator liveness {url}: {exc} (kubectl logs deploy/<release>-operator)")
        time.sleep(2)
