"""`textDocument/codeAction`: one handler (pygls takes one per method) asking
each feature that offers actions. A provider is `provide(ls, params) -> list`
and must be quick: it runs on every cursor move in some editors."""

from __future__ import annotations

import logging

from lsprotocol import types

log = logging.getLogger(__name__)

KINDS = [types.CodeActionKind.RefactorRewrite, types.CodeActionKind.QuickFix]


def setup(server) -> None:
    server.code_action_providers = []

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=KINDS)
    )
    def code_action(ls, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        actions: list[types.CodeAction] = []
        for provide in ls.code_action_providers:
            actions.extend(provide(ls, params))
        wanted = params.context.only
        if wanted:
            actions = [a for a in actions if any(a.kind.startswith(kind) for kind in wanted)]
        return actions or None
