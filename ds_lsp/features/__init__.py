"""LSP features: thin handlers that call the pure modules."""
