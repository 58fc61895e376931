-- Finding the oh-lsp client and sending it commands.
local config = require('oh_lsp.config')

local M = {}

local function notify(message, level)
  vim.notify('oh-lsp: ' .. message, level or vim.log.levels.INFO)
end
M.notify = notify

-- The oh-lsp client attached to `bufnr` (else, with `any`, any running oh-lsp client).
function M.get(bufnr, any)
  local clients = vim.lsp.get_clients({ name = config.name, bufnr = bufnr })
  if #clients == 0 and any then
    clients = vim.lsp.get_clients({ name = config.name })
  end
  return clients[1]
end

-- Like get(), but tells the user why there is none.
function M.need(bufnr, any)
  local client = M.get(bufnr, any)
  if not client then
    notify('no oh-lsp server is attached to this buffer. It starts on Python files inside a project (a folder'
      .. " with pyproject.toml, setup.py, setup.cfg or .git) once `vim.lsp.enable('oh_lsp')` or"
      .. " `require('oh_lsp').setup()` ran; see :checkhealth vim.lsp and :help oh_lsp", vim.log.levels.ERROR)
  end
  return client
end

-- Run the server command `command` with one object argument. `on_result(result)` gets the answer; errors are
-- shown to the user (the server's message says what was wrong).
function M.execute(client, command, args, on_result, bufnr)
  if args == nil or (type(args) == 'table' and next(args) == nil) then
    args = vim.empty_dict() -- `{}` would be sent as a JSON array
  end
  return client:request('workspace/executeCommand', { command = command, arguments = { args } },
    function(err, result)
      if err then
        notify(command .. ' failed: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
        return
      end
      if on_result then
        on_result(result)
      end
    end, bufnr)
end

return M
