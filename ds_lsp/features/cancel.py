"""Cancelling from the editor's progress UI.

`$/cancelRequest` is routed by the server's protocol (server.DsLspProtocol);
`window/workDoneProgress/cancel` arrives here. Both end in the task registry.
"""

from __future__ import annotations

from lsprotocol import types


def setup(server) -> None:
    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancelled(ls, params: types.WorkDoneProgressCancelParams) -> None:
        ls.tasks.cancel_progress(params.token)
