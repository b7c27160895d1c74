-- ds-lsp for Neovim 0.11+ (native LSP client).
-- Put this file on your runtimepath as lsp/ds_lsp.lua (e.g. ~/.config/nvim/lsp/ds_lsp.lua),
-- then in init.lua:  vim.lsp.enable('ds_lsp')
-- Settings go under `settings.dsLsp` (camelCase or snake_case, see the README's table).
return {
  cmd = { 'ds-lsp' },
  filetypes = { 'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
                'rust', 'go', 'java', 'c', 'cpp', 'cs', 'ruby', 'lua', 'sh', 'bash' },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  settings = {
    dsLsp = {
      -- backend = 'openai', preset = 'ollama', model = 'deepseek-r1:7b',
    },
  },
}
