"""ds-lsp: a language server that makes DeepSeek-R1 distills a code assistant."""

__version__ = "0.1.0"
