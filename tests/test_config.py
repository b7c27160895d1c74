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


# --- issue 5, defect 5: null, floats, acronyms; the reasoning setting -----------------


def test_null_in_the_editors_settings_resets_a_setting_to_its_default(tmp_path):
    below, problems = load(
        tmp_path,
        toml='backend = "openai"\nn_ctx = 4096\n',
        env={"DS_LSP_MODEL": "from-env", "DS_LSP_API_KEY": "sk-x"},
    )
    assert problems == []

    settings, problems = config.merge(
        [
            config.lsp_source({"dsLsp": {"nCtx": 2048, "model": None}}, "initializationOptions"),
            config.lsp_source(
                {"nCtx": None, "backend": None, "apiKey": None}, "workspace/configuration"
            ),
        ],
        base=below,
    )

    assert problems == []
    assert settings.n_ctx == 8192  # not the file's 4096, not the init options' 2048
    assert settings.backend == "llama_cpp"
    assert settings.model is None and settings.api_key is None
    assert settings.max_tokens == below.max_tokens  # keys left out stay as they were


def test_null_may_reset_to_the_settings_the_server_started_with(tmp_path):
    started_with, _ = load(tmp_path, env={"DS_LSP_N_CTX": "4096", "DS_LSP_MODEL": "m"})
    init, _ = config.merge(
        [config.lsp_source({"nCtx": 2048, "model": "x"}, "initializationOptions")],
        base=started_with,
    )

    settings, problems = config.merge(
        [config.lsp_source({"nCtx": None, "model": None, "topP": None}, "workspace")],
        base=init,
        defaults=started_with,
    )

    assert problems == []
    assert (settings.n_ctx, settings.model, settings.top_p) == (4096, "m", 0.95)


def test_null_for_an_unknown_key_is_still_reported():
    settings, problems = config.merge([config.lsp_source({"nCtxx": None}, "init")])
    assert settings == Settings()
    assert "dsLsp.nCtxx: unknown setting" in problems[0]


def test_empty_text_and_non_editor_sources_never_reset():
    base = Settings(n_ctx=4096, model="m")
    settings, problems = config.merge(
        [
            config.lsp_source({"model": "  "}, "init"),  # empty text: not set here
            config.Source("the command line", {"n_ctx": None}),  # a flag not given
        ],
        base=base,
    )
    assert (settings, problems) == (base, [])


@pytest.mark.parametrize("raw", [4096.7, 4096.5, 0.1, "4096.7", [4096], {"n": 1}])
def test_a_number_that_is_not_whole_is_refused_not_truncated(raw):
    settings, problems = config.merge([config.lsp_source({"nCtx": raw}, "init")])

    assert settings.n_ctx == 8192
    assert len(problems) == 1
    assert f"dsLsp.nCtx={raw!r} is not valid" in problems[0]
    assert "an integer of at least 256" in problems[0]


@pytest.mark.parametrize("key", ["nThreads", "reasoningBudget", "maxTokens", "nGpuLayers"])
def test_every_integer_setting_refuses_a_fraction(key):
    settings, problems = config.merge([config.lsp_source({key: 12.5}, "init")])

    assert settings == Settings()
    assert len(problems) == 1 and f"dsLsp.{key}=12.5 is not valid" in problems[0]


def test_whole_numbers_written_as_floats_or_text_are_accepted():
    settings, problems = config.merge(
        [config.lsp_source({"nCtx": 4096.0, "nThreads": "4", "nGpuLayers": -1.0}, "init")]
    )
    assert problems == []
    assert (settings.n_ctx, settings.n_threads, settings.n_gpu_layers) == (4096, 4, -1)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("nGPULayers", "n_gpu_layers"),
        ("nGpuLayers", "n_gpu_layers"),
        ("n_gpu_layers", "n_gpu_layers"),
        ("n-gpu-layers", "n_gpu_layers"),
        ("baseURL", "base_url"),
        ("baseUrl", "base_url"),
        ("APIKey", "api_key"),
        ("apiKey", "api_key"),
        ("topP", "top_p"),
        ("modelPath", "model_path"),
        ("nCtx", "n_ctx"),
    ],
)
def test_camel_case_keys_with_acronyms_name_the_right_setting(key, name):
    assert config.snake_case(key) == name


def test_n_gpu_layers_in_capitals_sets_the_setting():
    settings, problems = config.merge([config.lsp_source({"nGPULayers": 12}, "init")])
    assert problems == []
    assert settings.n_gpu_layers == 12


def test_reasoning_is_auto_unless_set(tmp_path):
    assert Settings().reasoning == "auto"

    settings, problems = load(tmp_path, toml='reasoning = "off"\n')
    assert (settings.reasoning, problems) == ("off", [])
    settings, problems = load(tmp_path, env={"DS_LSP_REASONING": "on"})
    assert (settings.reasoning, problems) == ("on", [])
    settings, problems = config.merge([config.lsp_source({"reasoning": "off"}, "init")])
    assert (settings.reasoning, problems) == ("off", [])


@pytest.mark.parametrize("raw", ["yes", "ON", True, 1, "none"])
def test_a_bad_reasoning_value_says_what_it_accepts(raw):
    settings, problems = config.merge([config.lsp_source({"reasoning": raw}, "init")])

    assert settings.reasoning == "auto"
    assert len(problems) == 1
    assert "dsLsp.reasoning" in problems[0]
    assert "it accepts one of auto, on, off; keeping 'auto'" in problems[0]


# --- issue 5, defect 6: secrets in the settings shown in logs -----------------------


def test_a_password_in_base_url_is_never_in_redacted_settings():
    settings = Settings(
        backend="openai", base_url="http://bob:hunter2@127.0.0.1:8080/v1", api_key="sk-SECRET"
    )

    shown = settings.redacted()

    assert "hunter2" not in str(shown) and "bob" not in str(shown)
    assert "sk-SECRET" not in str(shown)
    assert shown["base_url"].startswith("http://")
    assert shown["base_url"].endswith("@127.0.0.1:8080/v1")
    assert settings.base_url == "http://bob:hunter2@127.0.0.1:8080/v1"  # still usable


def test_a_base_url_without_credentials_is_shown_as_is():
    assert Settings(base_url="http://localhost:11434/v1").redacted()["base_url"] == (
        "http://localhost:11434/v1"
    )
    assert Settings().redacted()["base_url"] is None


def test_an_empty_section_from_neovim_is_no_setting():
    # Neovim sends `init_options = { dsLsp = {} }` as {"dsLsp": []}.
    assert config.merge([config.lsp_source({"dsLsp": []}, "init")]) == (Settings(), [])


def test_settings_grouped_by_feature_are_read(tmp_path):
    from_editor, problems = config.merge(
        [config.lsp_source({"dsLsp": {"edit": {"preview": True}}}, "init")]
    )
    assert (from_editor.edit_preview, problems) == (True, [])
    from_file, problems = load(tmp_path, toml="[edit]\npreview = true\n", env={}, flags={})
    assert (from_file.edit_preview, problems) == (True, [])


@pytest.mark.parametrize(("raw", "value"), [("on", True), ("false", False), ("1", True)])
def test_switches_read_words_in_the_environment(tmp_path, raw, value):
    settings, problems = load(tmp_path, toml="", env={"DS_LSP_EDIT_PREVIEW": raw}, flags={})
    assert (settings.edit_preview, problems) == (value, [])


def test_a_switch_that_is_not_one_is_refused_by_name():
    settings, [problem] = config.merge([config.lsp_source({"editPreview": "maybe"}, "init")])
    assert settings.edit_preview is False
    assert problem == (
        "dsLsp.editPreview='maybe' is not valid: it accepts true or false; keeping False"
    )
