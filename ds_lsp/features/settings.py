"""Settings from the editor: initializationOptions, then workspace/configuration.

Problems in initializationOptions are reported once, at start-up; each pull
of workspace/configuration reports only its own. A change to a setting the
model depends on makes the scheduler rebuild it (see backends/scheduler.py).
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from ds_lsp import __version__, config

log = logging.getLogger("ds_lsp")


def on_initialize(ls, params: types.InitializeParams) -> None:
    ls.init_settings, problems = config.merge(
        [config.lsp_source(params.initialization_options, "initializationOptions")],
        base=ls.base_settings,
        defaults=ls.base_settings,
    )
    report_problems(problems)  # once: later pulls merge on top of these settings
    apply(ls, ls.init_settings)


def setup(server) -> None:
    @server.feature(types.INITIALIZED)
    async def initialized(ls, params: types.InitializedParams) -> None:
        ls.log_forwarder.connect(asyncio.get_running_loop())
        log.info("ds-lsp %s started", __version__)
        await pull_workspace_settings(ls)
        log.info("settings: %s", ls.settings.redacted())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls, params: types.DidChangeConfigurationParams) -> None:
        # Clients that push settings send them here; the others are asked.
        if isinstance(params.settings, dict) and config.LSP_SECTION in params.settings:
            merge_workspace_settings(ls, params.settings)
        else:
            await pull_workspace_settings(ls)
        log.info("settings changed: %s", ls.settings.redacted())


def apply(ls, settings: config.Settings) -> None:
    ls.settings = settings
    ls.apply_log_level()
    ls.models.update(settings)


def merge_workspace_settings(ls, workspace_config: object) -> None:
    settings, problems = config.merge(
        [config.lsp_source(workspace_config, "workspace/configuration")],
        base=ls.init_settings,
        # null means "ds-lsp's own setting" (config file, environment, flags): VS Code
        # sends null for every declared setting left at a null default.
        defaults=ls.base_settings,
    )
    report_problems(problems)
    apply(ls, settings)


def report_problems(problems: list[str]) -> None:
    for problem in problems:
        log.warning("settings: %s", problem)
    if problems:
        log.warning("settings: running with the previous or default value for those")


async def pull_workspace_settings(ls) -> None:
    """Ask the editor for the "dsLsp" section, where it can answer."""
    caps = ls.client_capabilities
    if not (caps and caps.workspace and caps.workspace.configuration):
        return
    try:
        results = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=config.LSP_SECTION)])
        )
    except Exception as exc:  # an editor that fails this must not stop the server
        log.warning("settings: the editor did not answer workspace/configuration (%s)", exc)
        return
    merge_workspace_settings(ls, results[0] if results else None)
