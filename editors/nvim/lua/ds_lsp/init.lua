-- ds-lsp for Neovim: the server config (lsp/ds_lsp.lua) plus the comforts around it:
-- keys for the ghost text, :DsEdit, the chat commands and a live reasoning buffer.
-- Everything goes through the server's commands (docs/protocol.md); edits and the
-- chat document arrive as workspace/applyEdit and window/showDocument, which
-- Neovim handles itself.
local M = {}

local NAME = 'ds_lsp'
local levels = vim.log.levels

M.defaults = {
  -- How to start the server; nil keeps lsp/ds_lsp.lua's { 'ds-lsp' }.
  cmd = nil,
  -- ds-lsp settings (backend, preset, baseUrl, model, modelPath, ...), sent as
  -- init_options.dsLsp.
  settings = {},
  -- nil keeps lsp/ds_lsp.lua's list.
  filetypes = nil,
  -- Ghost text through vim.lsp.inline_completion (Neovim 0.12+). On 0.11 the
  -- server offers its suggestions as ordinary completion items instead.
  inline_completion = true,
  -- Insert-mode keys; false turns one off.
  keys = {
    accept = '<Tab>', -- accepts the ghost text, else types a Tab
    next = '<M-]>',
    prev = '<M-[>',
  },
  -- Call vim.lsp.enable('ds_lsp'); false if you enable it yourself.
  enable = true,
  -- Load the model when the server attaches (dsLsp.warmUp), not at the first pause.
  warm_up = true,
}

local function notify(message, level)
  vim.notify('ds-lsp: ' .. message, level or levels.INFO)
end

-- The ds-lsp client of the buffer, or of any buffer (the chat document is
-- markdown, which ds-lsp does not attach to by itself).
local function get_client(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = NAME })[1]
    or vim.lsp.get_clients({ name = NAME })[1]
  if not client then
    notify('the server is not running (:checkhealth vim.lsp)', levels.ERROR)
  end
  return client
end

-- The server streams its answers into the chat document: it must see the
-- buffer's text and changes, so the client is attached to it.
local function attach(client, bufnr)
  if not vim.lsp.buf_is_attached(bufnr, client.id) then
    vim.fn.bufload(bufnr)
    vim.lsp.buf_attach_client(bufnr, client.id)
  end
end

-- workspace/executeCommand with the one object argument the server expects.
local function execute(client, command, argument, bufnr, on_result)
  local params = { command = command, arguments = { argument } }
  client:request('workspace/executeCommand', params, function(err, result)
    if err then
      notify(command .. ' failed: ' .. err.message, levels.ERROR)
    elseif on_result then
      on_result(result)
    end
  end, bufnr)
end

-- The last message the server showed itself (window/showMessage).
local last_shown = ''

local function show_message(err, params, ctx)
  last_shown = params.message
  return vim.lsp.handlers['window/showMessage'](err, params, ctx)
end

-- "applied" (an edit) and "answered" (the chat) need no word: the change is there
-- to see. The server shows most other outcomes itself, just before it answers:
-- not said twice.
local seen = { applied = true, answered = true }

local function show_status(result)
  if type(result) == 'table' and result.status and not seen[result.status] then
    local message = result.message or result.status
    if not last_shown:find(message, 1, true) then
      local quiet = { preview = true, unchanged = true, cancelled = true }
      notify(message, quiet[result.status] and levels.INFO or levels.WARN)
    end
  end
  last_shown = ''
end

-- The LSP range the command was given, in the client's position encoding. A
-- charwise visual selection goes as selected; anything else as whole lines
-- (the server rewrites whole lines anyway).
local function command_range(bufnr, opts, encoding)
  local first, last = opts.line1, opts.line2
  local from = vim.api.nvim_buf_get_mark(bufnr, '<')
  local to = vim.api.nvim_buf_get_mark(bufnr, '>')
  if opts.range == 2 and vim.fn.visualmode() == 'v' and from[1] == first and to[1] == last then
    return vim.lsp.util.make_given_range_params(from, to, bufnr, encoding).range
  end
  local last_text = vim.api.nvim_buf_get_lines(bufnr, last - 1, last, true)[1]
  return {
    start = { line = first - 1, character = 0 },
    ['end'] = { line = last - 1, character = vim.str_utfindex(last_text, encoding) },
  }
end

-- Reasoning ---------------------------------------------------------------

local reasoning = { bufnr = nil, id = nil }

local function reasoning_buffer()
  if not (reasoning.bufnr and vim.api.nvim_buf_is_valid(reasoning.bufnr)) then
    -- Unlisted scratch buffer: buftype=nofile, bufhidden=hide, no swap file.
    reasoning.bufnr = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(reasoning.bufnr, 'ds-lsp://reasoning')
    vim.bo[reasoning.bufnr].filetype = 'markdown'
  end
  return reasoning.bufnr
end

-- Adds text at the end of the buffer; the text may end mid-line.
local function append(bufnr, text)
  local last = vim.api.nvim_buf_line_count(bufnr)
  local tail = vim.api.nvim_buf_get_lines(bufnr, last - 1, last, true)[1]
  local lines = vim.split(tail .. text, '\n', { plain = true })
  vim.api.nvim_buf_set_lines(bufnr, last - 1, last, true, lines)
end

local function start_line(bufnr)
  local last = vim.api.nvim_buf_line_count(bufnr)
  if vim.api.nvim_buf_get_lines(bufnr, last - 1, last, true)[1] ~= '' then
    append(bufnr, '\n')
  end
end

-- `dsLsp/reasoning {id, uri, range, text, done}`: kept in the buffer whether or
-- not it is shown, so :DsReasoning shows the reasoning so far.
local function on_reasoning(_, params)
  local bufnr = reasoning_buffer()
  if params.id ~= reasoning.id then
    reasoning.id = params.id
    local where = vim.fn.fnamemodify(vim.uri_to_fname(params.uri), ':t')
    if params.range then
      where = where .. ':' .. (params.range.start.line + 1)
    end
    start_line(bufnr)
    append(bufnr, '## ' .. where .. '\n')
  end
  append(bufnr, params.text or '')
  if params.done then
    start_line(bufnr)
    append(bufnr, string.rep('-', 40) .. '\n')
    reasoning.id = nil
  end
  -- Follow the text in every window that shows it.
  local last = vim.api.nvim_buf_line_count(bufnr)
  for _, win in ipairs(vim.fn.win_findbuf(bufnr)) do
    vim.api.nvim_win_set_cursor(win, { last, 0 })
  end
end

function M.show_reasoning()
  local bufnr = reasoning_buffer()
  if #vim.fn.win_findbuf(bufnr) == 0 then
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, bufnr)
    vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(bufnr), 0 })
    vim.cmd('wincmd p') -- a panel: the cursor stays in the code
  end
end

-- Commands ----------------------------------------------------------------

-- The server opens the chat with window/showDocument; this also attaches the
-- client to it, and opens it here if the server did not.
local function show_chat(client, result)
  if type(result) ~= 'table' or not result.uri then
    return
  end
  local bufnr = vim.uri_to_bufnr(result.uri)
  if #vim.fn.win_findbuf(bufnr) == 0 then
    vim.cmd('split')
    vim.api.nvim_win_set_buf(0, bufnr)
  end
  attach(client, bufnr)
end

local function show_document(err, params, ctx)
  local result = vim.lsp.handlers['window/showDocument'](err, params, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if client and not params.external then
    attach(client, vim.uri_to_bufnr(params.uri))
  end
  return result
end

function M.edit(opts)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = get_client(bufnr)
  if not client then
    return
  end
  local argument = {
    uri = vim.uri_from_bufnr(bufnr),
    range = command_range(bufnr, opts, client.offset_encoding),
  }
  local function send(instruction)
    if instruction == nil then
      return -- the input box was cancelled
    end
    -- An empty instruction lets a `# ds: ...` comment on the first line speak.
    argument.instruction = instruction
    execute(client, 'dsLsp.editSelection', argument, bufnr, show_status)
  end
  if opts.args ~= '' then
    send(opts.args)
  else
    vim.ui.input({ prompt = 'DeepSeek edit: ' }, send)
  end
end

function M.add_to_chat(opts)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = get_client(bufnr)
  if client then
    local argument = {
      uri = vim.uri_from_bufnr(bufnr),
      range = command_range(bufnr, opts, client.offset_encoding),
    }
    execute(client, 'dsLsp.addToChat', argument, bufnr, function(result)
      show_chat(client, result)
    end)
  end
end

function M.open_chat()
  local client = get_client(0)
  if client then
    execute(client, 'dsLsp.openChat', vim.empty_dict(), 0, function(result)
      show_chat(client, result)
    end)
  end
end

-- Sends the chat in the current buffer; the answer streams into it.
function M.send_chat()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = get_client(bufnr)
  if client then
    attach(client, bufnr) -- before the request, so the server has the text typed
    execute(client, 'dsLsp.sendChat', { uri = vim.uri_from_bufnr(bufnr) }, bufnr, show_status)
  end
end

-- Keys --------------------------------------------------------------------

-- Ghost text belongs in code, not in the chat document (attached by hand).
local function is_code(client, bufnr)
  local filetypes = client.config.filetypes
  return filetypes == nil or vim.tbl_contains(filetypes, vim.bo[bufnr].filetype)
end

-- What the key does without ds-lsp: its global insert-mode mapping (Neovim's
-- own <Tab> jumps in snippets; a completion plugin may map it), else itself.
-- Returns the keys for an expr mapping.
local function fall_through(lhs)
  local name = vim.fn.keytrans(vim.keycode(lhs))
  for _, m in ipairs(vim.api.nvim_get_keymap('i')) do
    if m.lhs == name then
      if m.expr == 1 then
        return m.callback and m.callback() or vim.api.nvim_eval(m.rhs)
      elseif m.callback then
        vim.schedule(m.callback) -- (an expr mapping may not change the text)
      else
        vim.api.nvim_feedkeys(vim.keycode(m.rhs), m.noremap == 1 and 'n' or 'm', false)
      end
      return ''
    end
  end
  return lhs
end

local function set_keys(bufnr, keys)
  local map = function(lhs, rhs, desc, expr)
    if lhs then
      vim.keymap.set('i', lhs, rhs, { buffer = bufnr, expr = expr, desc = desc })
    end
  end
  map(keys.accept, function()
    if not vim.lsp.inline_completion.get() then
      return fall_through(keys.accept)
    end
  end, 'ds-lsp: accept the suggestion', true)
  map(keys.next, function() vim.lsp.inline_completion.select({ count = 1 }) end,
    'ds-lsp: next suggestion')
  map(keys.prev, function() vim.lsp.inline_completion.select({ count = -1 }) end,
    'ds-lsp: previous suggestion')
end

local warmed = {} -- client ids whose model was warmed up

function M.setup(opts)
  opts = vim.tbl_deep_extend('force', M.defaults, opts or {})
  local config = {
    handlers = {
      ['dsLsp/reasoning'] = on_reasoning,
      ['window/showDocument'] = show_document,
      ['window/showMessage'] = show_message,
    },
  }
  config.cmd = opts.cmd
  config.filetypes = opts.filetypes
  if next(opts.settings) then -- (an empty table would go as a JSON list)
    config.init_options = { dsLsp = opts.settings }
  end
  vim.lsp.config(NAME, config)

  local command = vim.api.nvim_create_user_command
  command('DsEdit', M.edit, { range = true, nargs = '*', desc = 'ds-lsp: rewrite the lines' })
  command('DsAddToChat', M.add_to_chat, { range = true, desc = 'ds-lsp: add the lines to the chat' })
  command('DsChat', M.open_chat, { desc = 'ds-lsp: open the chat' })
  command('DsSend', M.send_chat, { desc = 'ds-lsp: send the chat in this buffer' })
  command('DsReasoning', M.show_reasoning, { desc = 'ds-lsp: show the live reasoning' })

  -- Neovim 0.11 has no inline completion: the server falls back to completion items.
  local inline = opts.inline_completion and vim.lsp.inline_completion ~= nil
  local group = vim.api.nvim_create_augroup('ds_lsp', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(event)
      local client = vim.lsp.get_client_by_id(event.data.client_id)
      if inline and client and client.name == NAME and is_code(client, event.buf) then
        vim.lsp.inline_completion.enable(true, { bufnr = event.buf })
        set_keys(event.buf, opts.keys)
        -- Load the model now, once per server, so the first pause is answered
        -- (as llama.vim warms its server); the server reports its progress.
        if opts.warm_up and not warmed[client.id] then
          warmed[client.id] = true
          client:request('workspace/executeCommand', { command = 'dsLsp.warmUp', arguments = {} },
            function() end, event.buf)
        end
      end
    end,
  })

  if opts.enable then
    vim.lsp.enable(NAME)
  end
end

return M
