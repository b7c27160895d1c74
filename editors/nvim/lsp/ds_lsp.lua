-- ds-lsp for Neovim 0.11+ (native LSP client), in `vim.lsp.config` style.
--
-- With the plugin (editors/nvim on your runtimepath), `require('ds_lsp').setup()`
-- uses this file and adds keys and commands; see editors/nvim/README.md.
-- Without it: put this file on your runtimepath as lsp/ds_lsp.lua
-- (e.g. ~/.config/nvim/lsp/ds_lsp.lua), then in init.lua:  vim.lsp.enable('ds_lsp')
--
-- Settings (camelCase or snake_case, see the README's table) go in
-- `init_options.dsLsp` (read once, at start) or `settings.dsLsp` (asked for by the
-- server, wins over init_options).
return {
  cmd = { 'ds-lsp' },
  filetypes = { 'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
                'rust', 'go', 'java', 'c', 'cpp', 'cs', 'ruby', 'lua', 'sh', 'bash' },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  -- Each keystroke's didChange at once (Neovim holds them 150 ms by default): ds-lsp
  -- starts a suggestion's work at the keystroke, so by the time Neovim asks (after
  -- its own 200 ms of quiet) the answer is ready or nearly so.
  flags = { debounce_text_changes = 0 },
  -- No empty tables here: Neovim sends an empty table as a JSON list.
  -- init_options = { dsLsp = { backend = 'openai', preset = 'ollama', model = 'deepseek-r1:7b' } },
  -- settings = { dsLsp = { completionDebounceMs = 150 } },
}
