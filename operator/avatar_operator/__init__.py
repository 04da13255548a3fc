"""Gaussian Avatar operator: reconciles AvatarDeployment and AvatarModelCache (DESIGN §7) with kopf.

Layout: `spec.py` (the custom resources as typed, validated models — pure), `builders/` (one module per child kind:
spec → manifest dicts — pure), `status.py` (conditions from observed children — pure), `kube.py` (the API calls),
`handlers.py` (kopf wiring, thin), `cli.py` (`avatar-operator run`).
"""

GROUP = "gaussianavatar.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
