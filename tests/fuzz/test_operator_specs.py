"""Property-based fuzzing of AvatarDeployment specs: whatever a user (or an attacker with edit rights on the CR)
writes, the operator either refuses it with one SpecError naming the field, or builds every child without failing,
and strings that land in the runtime's config file come out of it exactly as written (no YAML injection)."""

from __future__ import annotations

import string

from avatar_operator.builders import certificate, coturn, deployment, httproute, ingress, runtime_config, service
from avatar_operator.builders.common import Owner
from avatar_operator.spec import SpecError, parse_deployment
from avatar_runtime.config import ConfigError, load_config
from hypothesis import event, example, given
from hypothesis import strategies as st

OWNER = Owner(kind="AvatarDeployment", name="demo", namespace="avatars", uid="0d7e6f4a-uid")
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["x\nserver:\n  port: 1", "$(OPENAI_API_KEY)", "'; rm -rf / #", "{{ .Values }}", "a: b", "- x",
                     "!!python/object:os.system", "\u0000", "&a [*a]", "--static-auth-secret=x", "\"\"\"", "null"]),
)  # fmt: skip
NAME = st.one_of(st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z"), HOSTILE)
HOST = st.one_of(st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?\Z"), HOSTILE)
INT = st.one_of(st.integers(-5, 20), st.integers(), st.sampled_from([0, 1, 1000, 1001, 2**31, 2**63]))
SECRET_REF = st.fixed_dictionaries({"name": NAME, "key": HOSTILE})


def _optional(**fields) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional=fields)


SPECS = st.fixed_dictionaries(
    {"image": st.one_of(st.just("ghcr.io/example/avatar-runtime:1.0"), HOSTILE)},
    optional={
        "replicas": INT,
        "gpu": _optional(count=INT, resourceName=HOSTILE),
        "modelCacheRef": NAME,
        "sessions": _optional(concurrentLimit=INT, drainSeconds=INT),
        "autoscaling": _optional(enabled=st.booleans(), minReplicas=INT, maxReplicas=INT, targetActiveSessions=INT,
                                 engine=st.sampled_from(["keda", "hpa", "x"])),
        "avatar": _optional(name=HOSTILE),
        "llm": _optional(baseURL=st.one_of(st.just("https://llm.example.com/v1"), HOSTILE.map(lambda s: "http://" + s)),
                         model=HOSTILE, apiKeySecretRef=SECRET_REF),
        "tts": _optional(engine=st.sampled_from(["edge", "cosyvoice", "espeak", "piper"]), voice=HOSTILE,
                         apiKeySecretRef=SECRET_REF),
        "turn": _optional(enabled=st.booleans(), host=HOST, hostNetwork=st.booleans(), minPort=INT, maxPort=INT,
                          external=_optional(urls=st.lists(HOSTILE, max_size=3), secretRef=SECRET_REF)),
        "tls": _optional(issuerRef=_optional(name=HOSTILE, kind=st.sampled_from(["Issuer", "ClusterIssuer", "X"])),
                         secretName=NAME),
        "ingress": _optional(host=HOST, className=HOSTILE),
        "pod": _optional(nodeSelector=st.dictionaries(HOSTILE, HOSTILE, max_size=2),
                         env=st.lists(st.fixed_dictionaries({"name": HOSTILE, "value": HOSTILE}), max_size=2),
                         runtimeClassName=HOSTILE),
        "runtimeConfig": st.dictionaries(st.sampled_from(["server", "vad", "llm", "nonsense"]),
                                         st.dictionaries(HOSTILE, HOSTILE | st.integers(), max_size=2), max_size=2),
    },
)  # fmt: skip


# Structurally valid specs with hostile free-text fields: these reach the builders (wild ones mostly stop at parsing).
VALIDISH = st.builds(
    lambda gpu, limit, model, voice, prompt, host, turn: {
        "image": "ghcr.io/example/avatar-runtime:1.0",
        **({"gpu": {"count": 1}, "modelCacheRef": "cache"} if gpu else {"gpu": {"count": 0}}),
        "sessions": {"concurrentLimit": limit},
        "llm": {"baseURL": "https://llm.example.com/v1", "model": model},
        "tts": {"voice": voice},
        **({"ingress": {"host": host}} if host else {}),
        "turn": turn,
        **({"runtimeConfig": {"llm": {"system_prompt": prompt}}} if prompt is not None else {}),
    },
    st.booleans(), st.integers(1, 8), HOSTILE, HOSTILE, st.none() | HOSTILE,
    st.none() | st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?\Z"),
    st.sampled_from([{}, {"enabled": False}, {"external": {"urls": ["turn:turn.example.com:3478"]}}]),
)  # fmt: skip


@given(st.one_of(SPECS, VALIDISH, VALIDISH))
@example({"image": "img", "llm": {"model": "x\nserver:\n  port: 1"}, "tts": {"voice": "'; rm -rf / #"}})
@example({"image": "img", "gpu": {"count": 0}, "llm": {"model": "a\x85b"}})  # found by the long run: NEL became a space
def test_a_spec_is_refused_by_field_or_every_child_builds(tmp_path_factory, raw):
    try:
        spec = parse_deployment(raw)
    except SpecError as refused:
        assert str(refused) and "\n" not in str(refused).strip()
        event(f"refused: {str(refused).split(':')[0]}")
        return
    event("built")
    built = [
        runtime_config.build(OWNER, spec),
        deployment.build(OWNER, spec, runtime_config.checksum(OWNER, spec), "cache-models"),
        service.build(OWNER, spec),
        ingress.build(OWNER, spec),
        httproute.build(OWNER, spec),
        certificate.build(OWNER, spec),
    ]
    assert all(manifest is None or manifest["metadata"]["name"].startswith("demo") for manifest in built)
    if spec.turn.enabled and spec.turn.external is None:
        args = coturn.turnserver_args(OWNER, spec, ["10.0.0.0/8"])
        assert all(isinstance(arg, str) and "\n" not in arg for arg in args)
        assert sum(arg.startswith("--static-auth-secret") for arg in args) == 1  # nothing smuggled in a second

    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(built[0]["data"]["config.yaml"], encoding="utf-8")
    try:
        config = load_config(path, env={})
    except ConfigError:
        assert spec.runtime_config, "the operator rendered a config the runtime refuses without runtimeConfig"
        return
    if spec.llm.model is not None and "llm" not in spec.runtime_config:
        assert config.llm.model == spec.llm.model  # the string arrived intact: it did not become YAML structure
    if spec.tts.voice is not None and "tts" not in spec.runtime_config:
        assert config.tts.voice == spec.tts.voice
    assert config.server.port == 8282 or "server" in spec.runtime_config


@given(st.text(alphabet=string.printable, max_size=50))
def test_image_strings_are_taken_verbatim_into_the_pod(image):
    try:
        spec = parse_deployment({"image": image})
    except SpecError:
        return
    pod = deployment.build(OWNER, spec, runtime_config.checksum(OWNER, spec), None)["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == image
