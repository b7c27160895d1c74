"""Settings: one typed record merged from every place a user can set things.

Sources, later ones winning (the closer to the editor, the more specific):
defaults < user config file (TOML) < environment (DS_LSP_*) < command-line flags
< LSP initializationOptions < workspace/configuration section "dsLsp".

An empty or missing source changes nothing. A bad value never stops the
server: it is dropped with a message that names the setting and what it
accepts, and the value from the sources below it (usually the default) stays.

Keys may be snake_case (`n_gpu_layers`), camelCase (`nGpuLayers`, `nGPULayers`)
or kebab-case. An empty value means "not set here". In the editor's sources
(JSON), an explicit `null` resets the setting, whatever the sources below said:
to the built-in default, or to the `defaults` the caller gives `merge`. TOML has
no null; in the environment `none` or `null` clears the settings that may be
unset (model_path, n_threads, ...). Integers must be whole: `4096.0` is 4096,
`4096.7` is refused.
"""

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import cattrs

from ds_lsp.redact import redact_url

BackendName = Literal["llama_cpp", "openai"]
PresetName = Literal["ollama", "lmstudio", "llamacpp", "vllm", "sglang", "deepseek"]
LogLevel = Literal["debug", "info", "warning", "error"]
ReasoningMode = Literal["auto", "on", "off"]
DebounceMode = Literal["adaptive", "fixed"]
Switch = Literal["auto", "on", "off"]
ChatLocation = Literal["state", "workspace"]
CompletionPrompt = Literal["auto", "chat", "continuation"]

ENV_PREFIX = "DS_LSP_"
LSP_SECTION = "dsLsp"


@dataclass(frozen=True)
class Settings:
    # Which model backend: in process (llama_cpp) or an OpenAI-compatible server.
    backend: BackendName = "llama_cpp"
    # llama_cpp: the GGUF file. None: the default model (`ds-lsp models pull`).
    model_path: str | None = None
    # openai: a preset fills base_url and model with the usual local defaults.
    preset: PresetName | None = None
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # llama_cpp tuning.
    n_ctx: int = 8192
    n_threads: int | None = None
    n_gpu_layers: int = 0
    # llama_cpp: a Jinja chat template for a GGUF that carries none (or to replace its own).
    chat_template: str | None = None
    # Generation (R1 guidance: temperature 0.6, top-p 0.95).
    max_tokens: int = 4096
    reasoning_budget: int | None = 2048
    # Whether the model reasons (<think>...</think>) before answering. auto: as
    # the model does (a GGUF whose chat template has no <think> does not reason).
    reasoning: ReasoningMode = "auto"
    temperature: float = 0.6
    top_p: float = 0.95
    request_timeout: float = 120.0
    log_level: LogLevel = "info"
    # Inline completions (ghost text). The wait after a keystroke before asking
    # the model: "adaptive" follows the typing speed, never below
    # completion_debounce_ms; "fixed" is always completion_debounce_ms.
    completion_debounce: DebounceMode = "adaptive"
    completion_debounce_ms: int = 100
    completion_max_tokens: int = 64  # multi-line; a single line gets fewer
    # Writing time of a suggestion: after it, the suggestion ends with its first
    # complete line (llama.vim's t_max_predict_ms). Ghost text that is late is worth nothing.
    completion_time_budget_ms: int = 1000
    completion_context_tokens: int = 1536  # the prompt's budget around the cursor
    # textDocument/completion too: "auto" only for clients without inline completion.
    completion_fallback: Switch = "auto"
    # A separate model trained for fill-in-the-middle (Qwen2.5-Coder, ...). None:
    # the chat model with its reasoning skipped. In process a GGUF; over HTTP a
    # model name on the same server.
    completion_model_path: str | None = None
    completion_model: str | None = None
    # The FIM prompt format of that model: qwen2.5-coder, deepseek-coder,
    # codellama, starcoder, or a template with {prefix} and {suffix}.
    fim_template: str | None = None
    # The ghost-text prompt: "auto" from the model (prompt_style.py: an R1 distill gets
    # the instruction prompt, a model with FIM tokens its FIM format, any other plain
    # continuation); "chat" or "continuation" to choose. fim_template wins over both.
    completion_prompt: CompletionPrompt = "auto"
    # Edits: show a diff block to accept or reject instead of applying at once.
    edit_preview: bool = False
    # Where the chat document lives: the user's state directory (one folder per
    # workspace), or .ds-lsp/chat.md in the workspace.
    chat_location: ChatLocation = "state"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit for logs: neither the API key nor a password
        in base_url is ever shown."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if shown["api_key"]:
            shown["api_key"] = "<set>"
        if shown["base_url"]:
            shown["base_url"] = redact_url(shown["base_url"])
        return shown


_DEFAULTS = Settings()


SETTING_NAMES = tuple(f.name for f in fields(Settings))
_FIELD_TYPES = get_type_hints(Settings)
# Limits a value must respect: (check, what the setting accepts).
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_ctx": (lambda v: v >= 256, "an integer of at least 256"),
    "n_threads": (lambda v: v is None or v >= 1, "a positive integer"),
    "n_gpu_layers": (lambda v: v >= -1, "an integer; -1 offloads every layer"),
    "max_tokens": (lambda v: v >= 1, "a positive integer"),
    "reasoning_budget": (lambda v: v is None or v >= 0, "a token count; 0 means no budget"),
    "temperature": (lambda v: 0.0 <= v <= 2.0, "a number from 0 to 2"),
    "top_p": (lambda v: 0.0 < v <= 1.0, "a number above 0, up to 1"),
    "request_timeout": (lambda v: v > 0, "a positive number of seconds"),
    "completion_debounce_ms": (lambda v: 0 <= v <= 5000, "milliseconds, from 0 to 5000"),
    "completion_max_tokens": (lambda v: 1 <= v <= 1024, "a token count from 1 to 1024"),
    "completion_time_budget_ms": (lambda v: v >= 50, "milliseconds, at least 50"),
    "completion_context_tokens": (lambda v: v >= 64, "a token count of at least 64"),
}

_converter = cattrs.Converter()


def _text_only(value: Any, _type: Any) -> str:
    # cattrs would str() anything, turning a table or list into a "path".
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def _whole_number(value: Any, _type: Any) -> int:
    # cattrs would int() a float, silently turning 4096.7 into 4096.
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    if not isinstance(value, int | float | str):
        raise ValueError(value)
    return int(value)


_converter.register_structure_hook(str, _text_only)
_converter.register_structure_hook(int, _whole_number)


@dataclass(frozen=True)
class Source:
    """One place settings come from, and how to name a key of it in messages."""

    name: str  # "config file ~/.config/ds-lsp/config.toml", "environment", ...
    values: Mapping[str, Any]
    label: Callable[[str], str] = lambda key: key
    # JSON sources (the editor's): an explicit null resets a setting (see merge).
    null_resets: bool = False


def snake_case(key: str) -> str:
    """modelPath -> model_path; nGPULayers, nGpuLayers -> n_gpu_layers; model-path -> model_path."""
    key = key.replace("-", "_")
    key = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", key)  # GPULayers -> GPU_Layers
    key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)  # nGPU -> n_GPU
    return key.lower()


def _choices(name: str) -> list[str]:
    """The allowed words of a Literal setting (backend, preset, log_level)."""
    literal = [a for a in get_args(_FIELD_TYPES[name]) if a is not type(None)]
    if len(literal) == 1:  # Literal[...] | None
        literal = list(get_args(literal[0]))
    return [c for c in literal if isinstance(c, str)]


def _accepts(name: str) -> str:
    if name in _RANGES:
        return _RANGES[name][1]
    if _FIELD_TYPES[name] is bool:
        return "true or false"
    if _choices(name):
        return "one of " + ", ".join(_choices(name))
    return "text"


def _structure(name: str, raw: Any) -> Any:
    """Turn a raw value (TOML, env text, JSON) into the setting's type, or raise."""
    kind = _FIELD_TYPES[name]
    optional = type(None) in get_args(kind)
    if isinstance(raw, str):
        raw = raw.strip()
        if optional and raw.lower() in ("none", "null"):
            return None
    if kind is bool:
        return _boolean(raw)
    if isinstance(raw, bool):  # cattrs would turn True into 1
        raise ValueError(raw)
    value = _converter.structure(raw, kind)
    check = _RANGES.get(name)
    if check is not None and value is not None and not check[0](value):
        raise ValueError(raw)
    if name == "reasoning_budget" and value == 0:
        return None
    return value


_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in _TRUE + _FALSE:
        return raw.lower() in _TRUE
    raise ValueError(raw)


def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """`{"edit": {"preview": true}}` (JSON) or `[edit] preview = true` (TOML) is
    `edit_preview`: settings may be grouped by feature, as editors show them."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and snake_case(str(key)) not in SETTING_NAMES:
            for inner, inner_value in value.items():
                flat[f"{key}.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def merge(
    sources: Iterable[Source], base: Settings | None = None, defaults: Settings | None = None
) -> tuple[Settings, list[str]]:
    """Apply sources in order over `base` (the defaults). Return settings and problems.

    A null in an editor's source resets that setting to its value in `defaults`
    (the built-in defaults unless given). The server may pass the settings it
    started with, so that null means "ds-lsp's own setting" (config file,
    environment, flags) rather than the built-in one.

    Each problem is one line naming the setting, the bad value and what it
    accepts, e.g. "DS_LSP_BACKEND='ollama' is not valid: it accepts one of
    llama_cpp, openai; keeping 'llama_cpp'".
    """
    settings = base or Settings()
    defaults = defaults or _DEFAULTS
    problems: list[str] = []
    for source in sources:
        for key, raw in _flatten(source.values or {}).items():
            name = "_".join(snake_case(part) for part in str(key).split("."))
            resets = raw is None and source.null_resets
            if not resets and (raw is None or (isinstance(raw, str) and raw.strip() == "")):
                continue  # empty means "not set here"
            if name not in SETTING_NAMES:
                hint = difflib.get_close_matches(name, SETTING_NAMES, n=1)
                also = f" (did you mean {hint[0]}?)" if hint else ""
                problems.append(f"{source.label(str(key))}: unknown setting in {source.name}{also}")
                continue
            if resets:
                settings = replace(settings, **{name: getattr(defaults, name)})
                continue
            try:
                value = _structure(name, raw)
            except Exception:
                # Never echo a key back, even a malformed one.
                shown = "" if name == "api_key" else f"={raw!r}"
                kept = "the previous key" if name == "api_key" else repr(getattr(settings, name))
                problems.append(
                    f"{source.label(str(key))}{shown} is not valid: it accepts "
                    f"{_accepts(name)}; keeping {kept}"
                )
                continue
            settings = replace(settings, **{name: value})
    return settings, problems


# --- the sources -------------------------------------------------------------


def config_file_path(env: Mapping[str, str] | None = None) -> Path:
    """$DS_LSP_CONFIG, else $XDG_CONFIG_HOME/ds-lsp/config.toml (~/.config/...)."""
    env = os.environ if env is None else env
    if env.get("DS_LSP_CONFIG"):
        return Path(env["DS_LSP_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ds-lsp" / "config.toml"


def file_source(path: Path) -> tuple[Source, list[str]]:
    """The user config file. Missing or empty: no values. Unreadable: a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Source(f"config file {path}", {}), []
    except OSError as exc:
        return Source(f"config file {path}", {}), [f"cannot read config file {path}: {exc}"]
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Source(f"config file {path}", {}), [
            f"config file {path} is not valid TOML ({exc}); ignoring it"
        ]
    return Source(f"config file {path}", values, lambda k: f"{k} in {path}"), []


def env_source(env: Mapping[str, str] | None = None) -> Source:
    env = os.environ if env is None else env
    values = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(ENV_PREFIX) and key != "DS_LSP_CONFIG" and key != "DS_LSP_MODELS_DIR"
    }
    return Source("the environment", values, lambda k: ENV_PREFIX + k.upper())


def flags_source(flags: Mapping[str, Any]) -> Source:
    return Source("the command line", flags, lambda k: "--" + snake_case(k).replace("_", "-"))


def lsp_source(options: Any, name: str) -> Source:
    """initializationOptions or a workspace/configuration result.

    Accepts both `{"dsLsp": {...}}` and the flat `{...}` shape, camelCase or
    snake_case keys. A key set to null resets that setting (see `merge`).
    """
    if not isinstance(options, Mapping):
        return Source(name, {})
    section = options.get(LSP_SECTION)
    if isinstance(section, Mapping):
        options = section
    elif section == []:  # Neovim sends an empty Lua table `dsLsp = {}` as a JSON list
        return Source(name, {})
    return Source(name, options, lambda k: f"{LSP_SECTION}.{k}", null_resets=True)


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> tuple[Settings, list[str]]:
    """Defaults < config file < environment < flags: what the CLI starts from."""
    path = config_path or config_file_path(env)
    file_src, problems = file_source(path)
    settings, more = merge([file_src, env_source(env), flags_source(flags or {})])
    return settings, problems + more
