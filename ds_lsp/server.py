"""Builds the pygls language server and registers its features. Nothing else."""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from ds_lsp import __version__, config
from ds_lsp.features.log import LogForwarder

log = logging.getLogger("ds_lsp")


class DsLspServer(LanguageServer):
    """The server and the state its features share."""

    def __init__(self, settings: config.Settings, problems: list[str]) -> None:
        super().__init__(name="ds-lsp", version=__version__)
        # What the CLI gave us (defaults < file < env < flags); the editor's
        # settings are merged on top of it, never replacing it.
        self.base_settings = settings
        self.settings = settings
        self.startup_problems = list(problems)
        self.init_options: object = None
        self.log_forwarder = LogForwarder(self)
        log.addHandler(self.log_forwarder)
        self._apply_log_level()

    def _apply_log_level(self) -> None:
        level = getattr(logging, self.settings.log_level.upper())
        log.setLevel(level)
        self.log_forwarder.setLevel(level)

    def apply_editor_settings(self, workspace_config: object = None) -> list[str]:
        """Recompute settings from the CLI's plus the editor's; return the problems."""
        settings, problems = config.merge(
            [
                config.lsp_source(self.init_options, "initializationOptions"),
                config.lsp_source(workspace_config, "workspace/configuration"),
            ],
            base=self.base_settings,
        )
        self.settings = settings
        self._apply_log_level()
        return problems


def report_problems(problems: list[str]) -> None:
    for problem in problems:
        log.warning("settings: %s", problem)
    if problems:
        log.warning("settings: running with the previous or default value for those")


def build_server(settings: config.Settings, problems: list[str]) -> DsLspServer:
    server = DsLspServer(settings, problems)

    @server.feature(types.INITIALIZE)
    def initialize(ls: DsLspServer, params: types.InitializeParams) -> None:
        ls.log_forwarder.loop = asyncio.get_running_loop()
        ls.init_options = params.initialization_options
        ls.startup_problems += ls.apply_editor_settings()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: DsLspServer, params: types.InitializedParams) -> None:
        log.info("ds-lsp %s started", __version__)
        report_problems(ls.startup_problems)
        await pull_workspace_settings(ls)
        log.info("settings: %s", ls.settings.redacted())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: DsLspServer, params: types.DidChangeConfigurationParams
    ) -> None:
        # Clients that push settings send them here; the others are asked.
        if isinstance(params.settings, dict) and config.LSP_SECTION in params.settings:
            report_problems(ls.apply_editor_settings(params.settings))
        else:
            await pull_workspace_settings(ls)
        log.info("settings changed: %s", ls.settings.redacted())

    return server


async def pull_workspace_settings(ls: DsLspServer) -> None:
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
    report_problems(ls.apply_editor_settings(results[0] if results else None))
