"""Pure manifest builders: one module per child kind, spec in → manifest dicts out (no API calls, no clock).

Every child carries an owner reference to its custom resource (garbage collection), the `app.kubernetes.io/*`
labels, and a spec-hash annotation (`common.SPEC_HASH`) of what we built, so the handlers can tell drift and
changes from noise. `children.py` assembles the full list for one AvatarDeployment or AvatarModelCache.
"""
