"""The `models:` / `hub:` config schema: what is accepted, what is refused and with which message."""

from __future__ import annotations

import pytest
from avatar_runtime.models.hubs import SelectionError, select
from avatar_runtime.models.specs import (
    DEFAULT_MODELS,
    HubSettings,
    ModelSpec,
    ModelSpecList,
    default_models,
    safe_relative_path,
)
from pydantic import TypeAdapter, ValidationError

HEX = "a" * 64


def error_of(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        ModelSpec(**fields)
    return caught.value.errors()[0]["msg"]


def test_production_defaults():
    by_name = {m.name: m for m in DEFAULT_MODELS}
    assert by_name["wav2vec2-base-960h"].repo == "facebook/wav2vec2-base-960h"
    assert by_name["wav2vec2-base-960h"].revision == "main"
    assert by_name["lam-audio2exp"].files == ["LAM_audio2exp_streaming.tar"] and by_name["lam-audio2exp"].unpack
    sense = by_name["sensevoice-small"]
    assert (sense.source, sense.repo, sense.revision) == ("modelscope", "iic/SenseVoiceSmall", "master")
    assert {"model.pt", "config.yaml", "am.mvn", "configuration.json"} <= set(sense.files)
    copies = default_models()
    copies[0].files.append("x")
    assert "x" not in DEFAULT_MODELS[0].files  # a config's list does not alias the defaults


def test_revision_defaults_per_hub_and_pins_are_normalised():
    hf = ModelSpec(name="a", source="huggingface", repo="o/r", files=["w.bin"], sha256="SHA256:" + HEX.upper())
    assert hf.revision == "main" and hf.sha256 == HEX and hf.pinned_sha256("w.bin") == HEX
    assert hf.pinned_sha256("other") is None
    ms = ModelSpec(name="b", source="modelscope", repo="o/r", sha256={"./sub/w.bin": HEX})
    assert ms.revision == "master" and ms.sha256 == {"sub/w.bin": HEX}
    url = ModelSpec(name="c", source="url", url="https://example.org/x/voice.onnx?download=1", sha256=HEX)
    assert url.file_name_for_url() == "voice.onnx" and url.exact_files() == ["voice.onnx"]
    assert url.origin() == "https://example.org/x/voice.onnx?download=1"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "a/b", "source": "url"}, "must be 1-128 characters"),
        ({"name": "manifest.json", "source": "huggingface", "repo": "o/r"}, "names a directory"),
        ({"name": "m", "source": "huggingface"}, "needs `repo`"),
        ({"name": "m", "source": "huggingface", "repo": "just-a-name"}, "must look like owner/name"),
        ({"name": "m", "source": "gitlab", "repo": "o/r"}, "Input should be 'huggingface', 'modelscope' or 'url'"),
        ({"name": "m", "source": "url", "url": "https://h/x.bin"}, "needs `sha256`"),
        ({"name": "m", "source": "url", "url": "ftp://h/x.bin", "sha256": HEX}, "must be an http:// or https:// URL"),
        ({"name": "m", "source": "url", "url": "https://h/x", "sha256": HEX, "revision": "v1"}, "`revision` applies"),
        ({"name": "m", "source": "url", "url": "https://h/", "sha256": HEX}, "cannot take a file name"),
        ({"name": "m", "source": "huggingface", "repo": "o/r", "files": ["a", "b"], "sha256": HEX}, "exactly one file"),
        ({"name": "m", "source": "huggingface", "repo": "o/r", "files": ["a"], "sha256": "abc"}, "is not a sha256"),
        (
            {"name": "m", "source": "huggingface", "repo": "o/r", "files": ["a"], "sha256": {"b": HEX}},
            "does not select",
        ),
        ({"name": "m", "source": "huggingface", "repo": "o/r", "files": ["../x"]}, "no '..'"),
        ({"name": "m", "source": "huggingface", "repo": "o/r", "files": ["/etc/x"]}, "no leading '/'"),
        ({"name": "m", "source": "huggingface", "repo": "o/r", "files": ["a", "./a"]}, "more than once"),
        ({"name": "m", "source": "huggingface", "repo": "o/r", "branch": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(fields, message):
    assert message in error_of(**fields)


def test_model_names_must_be_unique():
    adapter = TypeAdapter(ModelSpecList)
    entry = {"name": "m", "source": "huggingface", "repo": "o/r"}
    with pytest.raises(ValidationError, match="m appears more than once"):
        adapter.validate_python([entry, entry])
    assert len(adapter.validate_python([entry, {**entry, "name": "n"}])) == 2


@pytest.mark.parametrize(("path", "expected"), [("a/b.bin", "a/b.bin"), ("./a//b", "a/b"), ("a/./b", "a/b")])
def test_safe_relative_paths_are_normalised(path, expected):
    assert safe_relative_path(path) == expected


@pytest.mark.parametrize("path", ["", ".", "..", "a/../../b", "/abs", "a\\..\\b", "a\x00b"])
def test_unsafe_relative_paths_are_refused(path):
    with pytest.raises(ValueError):
        safe_relative_path(path)


def test_select_takes_exact_files_and_patterns_and_names_what_is_absent():
    spec = ModelSpec(name="m", source="huggingface", repo="o/r", files=["config.json", "*.safetensors"])
    available = ["config.json", "a.safetensors", "sub/b.safetensors", "README.md"]
    assert select(spec, available) == ["a.safetensors", "config.json", "sub/b.safetensors"]
    assert select(ModelSpec(name="m", source="huggingface", repo="o/r"), available) == sorted(available)
    with pytest.raises(SelectionError, match=r"file 'config.json' is not in o/r@main; pattern '\*.safetensors'"):
        select(spec, ["README.md"])


def test_hub_settings_environment_wins():
    hub = HubSettings(huggingface_endpoint="https://hf.internal/", offline=False)
    assert hub.huggingface_endpoint == "https://hf.internal"
    env = {
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "MODELSCOPE_DOMAIN": "modelscope.ai",
        "HF_TOKEN": "t",
        "HF_HUB_OFFLINE": "1",
    }
    applied = hub.with_env(env)
    assert applied.huggingface_endpoint == "http://127.0.0.1:9"
    assert applied.modelscope_endpoint == "https://modelscope.ai"  # a bare domain, as the modelscope client takes it
    assert applied.token == "t" and applied.offline is True
    both = {"MODELSCOPE_ENDPOINT": "http://127.0.0.1:8/", "MODELSCOPE_DOMAIN": "modelscope.ai"}
    assert hub.with_env(both).modelscope_endpoint == "http://127.0.0.1:8"  # the modelscope client's precedence
    assert HubSettings(offline=True).with_env({"AVATAR_OFFLINE": "0"}).offline is False
    assert HubSettings().with_env({"AVATAR_OFFLINE": "1", "HF_HUB_OFFLINE": "0"}).offline is True
    assert HubSettings().with_env({}) == HubSettings()
    with pytest.raises(ValidationError, match="hub.modelscope_endpoint must be an http"):
        HubSettings(modelscope_endpoint="www.modelscope.cn")
