-- What a user does after pasting one of the README's Neovim snippets into init.lua (Neovim 0.7+):
-- open a file of the project ($CS_FILE), wait until the snippet's "codesearch" client is running
-- and the index is built ($/progress end), run :lua vim.lsp.buf.workspace_symbol(...) and read
-- the quickfix list it fills, ask codesearch/search, and write it all to $CS_OUT as JSON.
-- Used by tests/test_editors.py; the snippet itself is the README's text, unchanged.
local out = vim.env.CS_OUT
local state = { ended = false }

local function finish(payload)
  payload.log = vim.lsp.get_log_path()
  local file = io.open(out, "w")
  file:write(vim.fn.json_encode(payload))
  file:close()
  vim.cmd("qa!")
end

-- watch the progress notifications without replacing what Neovim does with them
local progress = vim.lsp.handlers["$/progress"]
vim.lsp.handlers["$/progress"] = function(err, result, ctx, config)
  if result and result.value and result.value.kind == "end" then state.ended = true end
  if progress then return progress(err, result, ctx, config) end
end

local function codesearch_client()
  local clients = vim.lsp.get_clients and vim.lsp.get_clients() or vim.lsp.get_active_clients()
  for _, client in ipairs(clients) do
    if client.name == "codesearch" then return client end
  end
end

vim.cmd("edit " .. vim.fn.fnameescape(vim.env.CS_FILE))
local buf = vim.api.nvim_get_current_buf()

if not vim.wait(60000, function()
  local client = codesearch_client()
  return client ~= nil and client.initialized and vim.lsp.buf_is_attached(buf, client.id)
end, 50) then
  finish({ error = "no codesearch client started, initialized and attached to the buffer" }) return
end
local client = codesearch_client()
local answers = { root = client.config.root_dir, filetype = vim.bo[buf].filetype }
if not vim.wait(240000, function() return state.ended end, 100) then
  answers.error = "indexing did not end" finish(answers) return
end

vim.fn.setqflist({}, "r")
vim.lsp.buf.workspace_symbol("parse header links")
vim.wait(30000, function() return #vim.fn.getqflist() > 0 end, 50)
answers.quickfix = {}
for _, item in ipairs(vim.fn.getqflist()) do
  table.insert(answers.quickfix, { file = vim.api.nvim_buf_get_name(item.bufnr), lnum = item.lnum, text = item.text })
end

vim.lsp.buf_request(buf, "codesearch/search", { query = "session cookies", k = 3 }, function(err, result)
  answers.search = { err = err, result = result }
end)
vim.wait(60000, function() return answers.search ~= nil end, 20)
finish(answers)
