"""The custom resources' specs as typed models (DESIGN §7), mirroring crds/*.yaml — defaults included.

The API server applies the CRD's defaults and validation; the operator parses the spec again with these models so
that (a) builders get typed values with defaults even from an API that does not default (the test emulator), and
(b) rules that span fields or objects become a `SpecError` naming the field, which the handlers turn into
`Ready=False` without building anything. Field names are the CRD's (camelCase), via aliases.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SpecError(ValueError):
    """The spec cannot be built; `field` is the dotted path (spec.gpu.count) and the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class _Model(BaseModel):
    # strict: "3" is not 3 and "yes" is not true — the API server rejects those, so must we (parity with the CRD).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True)


# -- AvatarDeployment --------------------------------------------------------------------------------------------
class GPU(_Model):
    count: int = Field(1, ge=0, le=16, description="GPUs per pod; 0 = CPU only (embedded engines)")
    resource_name: str = Field("nvidia.com/gpu", alias="resourceName")


class Sessions(_Model):
    concurrent_limit: int = Field(4, ge=1, le=1000, alias="concurrentLimit")
    drain_seconds: int = Field(
        300, ge=0, le=86400, alias="drainSeconds",
        description="after SIGTERM, how long live conversations may go on before the pod closes them",
    )  # fmt: skip


class Autoscaling(_Model):
    enabled: bool = False
    # At least 1: a GPU pod needs minutes to start, so scaled to zero every first visitor would be refused.
    min_replicas: int = Field(1, ge=1, alias="minReplicas")
    max_replicas: int = Field(4, ge=1, alias="maxReplicas")
    target_active_sessions: int | None = Field(None, ge=1, alias="targetActiveSessions")
    engine: Literal["keda", "hpa"] = "keda"

    @model_validator(mode="after")
    def _range(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError("maxReplicas: must be >= minReplicas")
        return self


class Avatar(_Model):
    name: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SecretKeyRef(_Model):
    name: str = Field(pattern=DNS_LABEL)
    key: str = Field(min_length=1)


class LLM(_Model):
    base_url: str | None = Field(None, alias="baseURL", pattern=r"^https?://")
    model: str | None = None
    api_key_secret_ref: SecretKeyRef | None = Field(None, alias="apiKeySecretRef")


class TTS(_Model):
    engine: Literal["edge", "cosyvoice", "espeak"] = "edge"
    voice: str | None = None
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, alias="apiKeySecretRef", description="cosyvoice: Secret key holding the DashScope API key"
    )


class ExternalTurn(_Model):
    urls: list[str] = Field(min_length=1)
    secret_ref: SecretKeyRef | None = Field(
        None, alias="secretRef", description="coturn use-auth-secret shared secret of the external TURN"
    )


class Turn(_Model):
    enabled: bool = True
    external: ExternalTurn | None = None
    host: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="public DNS name browsers use to reach the operator's coturn (default: the ingress/gateway host)",
    )
    host_network: bool = Field(False, alias="hostNetwork", description="run the operator's coturn on the node network")
    min_port: int = Field(49152, ge=1024, le=65535, alias="minPort")
    max_port: int = Field(49252, ge=1024, le=65535, alias="maxPort")

    @model_validator(mode="after")
    def _ports(self) -> Turn:
        if self.max_port < self.min_port:
            raise ValueError("maxPort: must be >= minPort")
        return self


class IssuerRef(_Model):
    name: str
    kind: Literal["Issuer", "ClusterIssuer"] = "ClusterIssuer"


class TLS(_Model):
    issuer_ref: IssuerRef | None = Field(None, alias="issuerRef")
    secret_name: str | None = Field(None, alias="secretName", pattern=DNS_LABEL)

    @model_validator(mode="after")
    def _one(self) -> TLS:
        if (self.issuer_ref is None) == (self.secret_name is None):
            raise ValueError("issuerRef: set exactly one of issuerRef (cert-manager) or secretName (a TLS Secret)")
        return self


class Ingress(_Model):
    host: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    class_name: str | None = Field(None, alias="className")


class ParentRef(_Model):
    name: str
    namespace: str | None = None
    section_name: str | None = Field(None, alias="sectionName")


class Gateway(_Model):
    parent_ref: ParentRef = Field(alias="parentRef")
    hostname: str | None = None


class Pod(_Model):
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    runtime_class_name: str | None = Field(None, alias="runtimeClassName")
    resources: dict[str, Any] = Field(default_factory=dict, description="extra requests/limits (GPU is added)")
    env: list[dict[str, Any]] = Field(default_factory=list)


class AvatarDeploymentSpec(_Model):
    image: str = Field(min_length=1)
    replicas: int = Field(1, ge=0, le=1000)
    gpu: GPU = Field(default_factory=GPU)
    sessions: Sessions = Field(default_factory=Sessions)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    model_cache_ref: str | None = Field(None, alias="modelCacheRef", pattern=DNS_LABEL)
    avatar: Avatar = Field(default_factory=Avatar)
    llm: LLM = Field(default_factory=LLM)
    tts: TTS = Field(default_factory=TTS)
    turn: Turn = Field(default_factory=Turn)
    tls: TLS | None = None
    ingress: Ingress | None = None
    gateway: Gateway | None = None
    pod: Pod = Field(default_factory=Pod)
    runtime_config: dict[str, Any] = Field(
        default_factory=dict, alias="runtimeConfig", description="extra runtime config keys, merged last"
    )

    @model_validator(mode="after")
    def _cross_field(self) -> AvatarDeploymentSpec:
        if self.ingress is not None and self.gateway is not None:
            raise ValueError("gateway: set ingress or gateway, not both")
        has_host = self.ingress is not None or (self.gateway is not None and self.gateway.hostname is not None)
        if self.tls is not None and self.tls.issuer_ref is not None and not has_host:
            raise ValueError("tls: issuerRef needs a host to certify: set ingress.host or gateway.hostname")
        if self.gpu.count > 0 and self.model_cache_ref is None:
            raise ValueError("modelCacheRef: required when gpu.count > 0 (the production engines need their models)")
        target = self.autoscaling.target_active_sessions
        if target is not None and target > self.sessions.concurrent_limit:
            raise ValueError(
                "autoscaling.targetActiveSessions: must be <= sessions.concurrentLimit (a pod never holds more, so "
                "the autoscaler would never scale up)"
            )
        return self


# -- AvatarModelCache --------------------------------------------------------------------------------------------
class Storage(_Model):
    size: str = Field("30Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
    storage_class_name: str | None = Field(None, alias="storageClassName")
    access_modes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]] = Field(
        default_factory=lambda: ["ReadWriteMany"], alias="accessModes", min_length=1
    )
    existing_claim: str | None = Field(None, alias="existingClaim", pattern=DNS_LABEL)

    @model_validator(mode="after")
    def _claim_or_class(self) -> Storage:
        if self.existing_claim is not None and self.storage_class_name is not None:
            raise ValueError("storageClassName: applies only to a claim the operator creates, not to existingClaim")
        return self


class CachedModel(_Model):
    """One entry of the runtime's `models:` list (runtime/avatar_runtime/models/specs.py validates it in the Job)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    source: Literal["huggingface", "modelscope", "url"]
    repo: str | None = None
    url: str | None = Field(None, pattern=r"^https?://")
    revision: str | None = None
    sha256: str | dict[str, str] | None = None
    files: list[str] = Field(default_factory=list)
    unpack: bool = False

    @model_validator(mode="after")
    def _where(self) -> CachedModel:
        if self.source == "url" and (self.url is None or self.sha256 is None):
            raise ValueError("url: source url needs url and sha256")
        if self.source != "url" and self.repo is None:
            raise ValueError(f"repo: source {self.source} needs repo")
        return self


class CachedAvatar(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str = Field(pattern=r"^https?://")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AvatarModelCacheSpec(_Model):
    image: str = Field(min_length=1, description="runtime image whose `avatar-runtime models pull` fills the cache")
    storage: Storage = Field(default_factory=Storage)
    models: list[CachedModel] = Field(default_factory=list, description="empty = the runtime's production defaults")
    avatars: list[CachedAvatar] = Field(default_factory=list)
    hub: dict[str, Any] = Field(default_factory=dict, description="runtime `hub:` settings (endpoints, offline)")

    @model_validator(mode="after")
    def _unique_names(self) -> AvatarModelCacheSpec:
        for field, entries in (("models", self.models), ("avatars", self.avatars)):
            seen: set[str] = set()
            for index, entry in enumerate(entries):
                if entry.name in seen:
                    raise ValueError(f"{field}.{index}: duplicate name {entry.name!r}")
                seen.add(entry.name)
        return self


# -- parsing -----------------------------------------------------------------------------------------------------
_FIELD_PATH = re.compile(r"^[A-Za-z_]\w*(\.\w+)*$")
_UNION_TAGS = {"str", "int", "bool", "float", "list", "dict"}  # pydantic names the union branch in the location


def _field_of(error: ValidationError) -> tuple[str, str]:
    """(dotted field, message); cross-field rules name their field as a "field: why" message prefix."""
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"] if not (str(part) in _UNION_TAGS or "[" in str(part))]
    parts = ["spec", *loc]
    message = first["msg"].removeprefix("Value error, ")
    field, sep, rest = message.partition(": ")
    if sep and _FIELD_PATH.match(field):
        parts.append(field)
        message = rest
    return ".".join(parts), message


def parse_deployment(spec: dict[str, Any]) -> AvatarDeploymentSpec:
    try:
        return AvatarDeploymentSpec.model_validate(spec or {})
    except ValidationError as exc:
        raise SpecError(*_field_of(exc)) from None


def parse_model_cache(spec: dict[str, Any]) -> AvatarModelCacheSpec:
    try:
        return AvatarModelCacheSpec.model_validate(spec or {})
    except ValidationError as exc:
        raise SpecError(*_field_of(exc)) from None
