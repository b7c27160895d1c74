"""Tracebacks, stacks and log files never show a key or URL credentials, at any level."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from ds_lsp.features.log import install_redaction, log_to_file

KEY = "sk-fake-9f8e7d6c5b4a"
PASSWORD = "hunter2-secret"
URL = f"http://bob:{PASSWORD}@127.0.0.1:9/v1"
LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
# Loggers the server redacts: ours, pygls's, the HTTP stack's, asyncio's.
LOGGERS = ["ds_lsp.test", "pygls.test", "httpx", "openai", "asyncio"]


@pytest.fixture
def output():
    """Everything the loggers write, fully formatted, after the server's redaction."""
    factory = logging.getLogRecordFactory()
    install_redaction(lambda: [KEY])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
    logging.setLogRecordFactory(factory)


def _fail_with_secrets() -> None:
    try:
        raise ValueError(f"api_key={KEY}")
    except ValueError as cause:
        raise ConnectionError(f"cannot reach {URL} with key {KEY}") from cause


def _log_everything(logger: logging.Logger) -> None:
    for level in LEVELS:
        try:
            _fail_with_secrets()
        except ConnectionError:
            logger.log(level, "request failed", exc_info=True)
            logger.log(level, "request failed: %s", URL, stack_info=True)
    try:
        _fail_with_secrets()
    except ConnectionError as exc:
        logger.exception("request failed")
        logger.error("request failed", exc_info=exc)


@pytest.mark.parametrize("name", LOGGERS)
def test_tracebacks_are_redacted_at_every_level(output, name):
    _log_everything(logging.getLogger(name))

    text = output.getvalue()
    assert "Traceback" in text and "ConnectionError" in text  # the tracebacks are there
    assert "127.0.0.1:9/v1" in text  # the URL is shown, its credentials are not
    assert KEY not in text
    assert PASSWORD not in text


def test_the_log_file_is_redacted_and_rotates(output, tmp_path: Path):
    path = tmp_path / "ds-lsp.log"
    log_to_file(str(path), max_bytes=4000, keep=2)
    logger = logging.getLogger("ds_lsp.test")
    try:
        for _ in range(30):
            _log_everything(logger)
    finally:
        for name in ("ds_lsp", "pygls", "httpx", "httpcore", "openai", "asyncio"):
            for handler in logging.getLogger(name).handlers[:]:
                if getattr(handler, "baseFilename", None) == str(path):
                    logging.getLogger(name).removeHandler(handler)
                    handler.close()

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ds-lsp.log", "ds-lsp.log.1", "ds-lsp.log.2"]  # rotated, 2 kept
    text = "".join(file.read_text() for file in tmp_path.iterdir())
    assert "Traceback" in text
    assert KEY not in text and PASSWORD not in text
