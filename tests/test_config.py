"""Settings: defaults, config file, environment, flags, editor sources, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from ds_lsp import config
from ds_lsp.config import Settings


def load(tmp_path: Path, toml: str | None = None, env=None, flags=None):
    path = tmp_path / "config.toml"
    if toml is not None:
        path.write_text(toml, encoding="utf-8")
    return config.load(flags=flags or {}, env=env or {}, config_path=path)


def test_nothing_set_gives_the_r1_defaults(tmp_path):
    settings, problems = load(tmp_path)

    assert problems == []
    assert settings == Settings()
    assert settings.backend == "llama_cpp"
    assert (settings.temperature, settings.top_p) == (0.6, 0.95)


def test_empty_sources_change_nothing(tmp_path):
    settings, problems = load(
        tmp_path, toml="", env={"DS_LSP_MODEL": "", "DS_LSP_BACKEND": "  "}, flags={}
    )
    assert problems == []
    assert settings == Settings()

    merged, problems = config.merge(
        [config.lsp_source(None, "init"), config.lsp_source({}, "ws"), config.lsp_source([], "x")]
    )
    assert (merged, problems) == (Settings(), [])


def test_each_public_env_var_sets_its_setting(tmp_path):
    env = {
        "DS_LSP_BACKEND": "openai",
        "DS_LSP_MODEL_PATH": "/models/r1.gguf",
        "DS_LSP_BASE_URL": "http://127.0.0.1:8080/v1",
        "DS_LSP_MODEL": "deepseek-r1:7b",
        "DS_LSP_API_KEY": "sk-x",
    }
    settings, problems = load(tmp_path, env=env)

    assert problems == []
    assert settings.backend == "openai"
    assert settings.model_path == "/models/r1.gguf"
    assert settings.base_url == "http://127.0.0.1:8080/v1"
    assert settings.model == "deepseek-r1:7b"
    assert settings.api_key == "sk-x"


def test_later_sources_win(tmp_path):
    toml = 'backend = "openai"\nmodel = "from-file"\nmax_tokens = 100\nn_ctx = 4096\n'
    env = {"DS_LSP_MODEL": "from-env", "DS_LSP_MAX_TOKENS": "200"}
    flags = {"model": "from-flag"}
    settings, problems = load(tmp_path, toml=toml, env=env, flags=flags)

    assert problems == []
    assert settings.backend == "openai"  # only the file said it
    assert settings.n_ctx == 4096
    assert settings.max_tokens == 200  # env beats file
    assert settings.model == "from-flag"  # flag beats env

    editor, problems = config.merge(
        [
            config.lsp_source({"dsLsp": {"model": "from-init"}}, "initializationOptions"),
            config.lsp_source({"model": "from-workspace"}, "workspace/configuration"),
        ],
        base=settings,
    )
    assert editor.model == "from-workspace"
    assert editor.max_tokens == 200  # untouched by the editor


def test_editor_keys_may_be_camel_case_or_snake_case():
    settings, problems = config.merge(
        [config.lsp_source({"modelPath": "/a.gguf", "n_gpu_layers": 10, "nCtx": 2048}, "init")]
    )
    assert problems == []
    assert (settings.model_path, settings.n_gpu_layers, settings.n_ctx) == ("/a.gguf", 10, 2048)


@pytest.mark.parametrize(
    ("env", "named", "accepts", "kept"),
    [
        (
            {"DS_LSP_BACKEND": "ollama"},
            "DS_LSP_BACKEND='ollama'",
            "one of llama_cpp, openai",
            "llama_cpp",
        ),
        ({"DS_LSP_N_CTX": "lots"}, "DS_LSP_N_CTX='lots'", "an integer of at least 256", 8192),
        ({"DS_LSP_TEMPERATURE": "9"}, "DS_LSP_TEMPERATURE='9'", "a number from 0 to 2", 0.6),
        ({"DS_LSP_PRESET": "kobold"}, "DS_LSP_PRESET='kobold'", "ollama, lmstudio", None),
    ],
)
def test_a_bad_value_is_named_with_what_it_accepts_and_the_default_stays(
    tmp_path, env, named, accepts, kept
):
    settings, problems = load(tmp_path, env=env)

    assert len(problems) == 1
    assert named in problems[0]
    assert accepts in problems[0]
    name = config.snake_case(next(iter(env))[len("DS_LSP_") :])
    assert getattr(settings, name) == kept


def test_a_bad_value_in_the_file_names_the_file(tmp_path):
    settings, problems = load(tmp_path, toml="max_tokens = -3\n")

    assert settings.max_tokens == 4096
    assert len(problems) == 1
    assert "max_tokens in " in problems[0] and "config.toml" in problems[0]
    assert "a positive integer" in problems[0]


def test_an_unknown_setting_suggests_the_right_name(tmp_path):
    settings, problems = load(tmp_path, toml='modle_path = "/x.gguf"\n')

    assert settings.model_path is None
    assert "did you mean model_path?" in problems[0]


def test_a_broken_config_file_is_reported_and_ignored(tmp_path):
    settings, problems = load(tmp_path, toml="backend = \n[[[", env={"DS_LSP_MODEL": "m"})

    assert settings.model == "m"
    assert "not valid TOML" in problems[0]


def test_a_malformed_api_key_is_never_echoed():
    settings, problems = config.merge(
        [config.lsp_source({"apiKey": {"secret": "sk-SECRET"}}, "init")]
    )
    assert settings.api_key is None
    assert "sk-SECRET" not in problems[0]
    assert "dsLsp.apiKey" in problems[0]


def test_the_api_key_is_never_in_repr_or_redacted_settings():
    settings = Settings(api_key="sk-SECRET")

    assert "sk-SECRET" not in repr(settings)
    assert settings.redacted()["api_key"] == "<set>"
    assert "sk-SECRET" not in str(settings.redacted())


def test_reasoning_budget_zero_or_none_means_no_budget():
    settings, problems = config.merge([config.Source("t", {"reasoning_budget": 0})])
    assert settings.reasoning_budget is None
    settings, problems = config.merge([config.Source("t", {"reasoning_budget": "none"})])
    assert settings.reasoning_budget is None and problems == []


def test_config_file_location_follows_xdg_and_override(tmp_path):
    assert config.config_file_path({"DS_LSP_CONFIG": "/etc/x.toml"}) == Path("/etc/x.toml")
    assert config.config_file_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/ds-lsp/config.toml")
