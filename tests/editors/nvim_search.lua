-- Drive the codesearch language server from headless Neovim (0.7+): start it over stdio on
-- $CS_ROOT, wait until indexing ends ($/progress), run workspace/symbol and codesearch/search,
-- and write what came back to $CS_OUT as JSON. Used by tests/test_editors.py.
local root, out = vim.env.CS_ROOT, vim.env.CS_OUT
local state = { ended = false, initialized = false }

local function finish(payload)
  local file = io.open(out, "w")
  file:write(vim.fn.json_encode(payload))
  file:close()
  vim.cmd("qa!")
end

local id = vim.lsp.start_client({
  name = "codesearch",
  cmd = { vim.env.CS_CMD, "serve" },
  root_dir = root,
  workspace_folders = { { uri = vim.uri_from_fname(root), name = "ws" } },
  init_options = { watch = false },
  on_init = function() state.initialized = true end,
  handlers = {
    ["$/progress"] = function(_, result)
      if result and result.value and result.value.kind == "end" then state.ended = true end
    end,
  },
})
if not id then finish({ error = "the server did not start" }) return end

if not vim.wait(60000, function() return state.initialized end, 50) then
  finish({ error = "no initialize answer" }) return
end
if not vim.wait(240000, function() return state.ended end, 100) then
  finish({ error = "indexing did not end" }) return
end

local client = vim.lsp.get_client_by_id(id)
local answers = {}
local function ask(name, method, params)
  client.request(method, params, function(err, result) answers[name] = { err = err, result = result } end, 0)
  vim.wait(60000, function() return answers[name] ~= nil end, 20)
end
ask("symbols", "workspace/symbol", { query = "parse header links" })
ask("search", "codesearch/search", { query = "session cookies", k = 3 })
vim.lsp.stop_client(id)
finish(answers)
