-- The `ohLsp/status` notification and the statusline string built from it.
local M = {}

local latest = {} -- client id -> the last `ohLsp/status` payload

-- Redraw statuslines (and tell lualine & co. through `User OhLspStatus`), once per batch of changes.
local pending = false
function M.changed()
  if pending then
    return
  end
  pending = true
  vim.schedule(function()
    pending = false
    pcall(vim.cmd.redrawstatus)
    vim.api.nvim_exec_autocmds('User', { pattern = 'OhLspStatus', modeline = false })
  end)
end

-- The `ohLsp/status` handler (in the client configuration's `handlers`).
function M.handler(_, result, ctx)
  if type(result) == 'table' then
    latest[ctx.client_id] = result
    M.changed()
  end
end

local function alive(client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  return client ~= nil and not client:is_stopped()
end

-- The last status of the oh-lsp client of `bufnr` (else of any running oh-lsp client), and that client's id.
function M.data(bufnr)
  local client = require('oh_lsp.client').get(bufnr or vim.api.nvim_get_current_buf(), false)
  if client and alive(client.id) and latest[client.id] then
    return latest[client.id], client.id
  end
  local best
  for id, status in pairs(latest) do
    if alive(id) and (best == nil or id > best) then
      best = id
    end
  end
  if best then
    return latest[best], best
  end
  return nil, nil
end

local format = require('oh_lsp.format')
local number, money = format.number, format.money

-- Whether a success rate means something yet: something has finished (null until then; older servers send 0).
local function has_rate(status)
  if type(status.successRate) ~= 'number' then
    return false
  end
  return status.successRate > 0 or number(status.completed) + number(status.failed) > 0
end

-- The status as one line of plain text (no statusline escaping). `running`: the oldest running oh-lsp task, whose
-- latest progress message is added (at most 60 characters).
function M.text(status, running)
  if type(status) ~= 'table' then
    return ''
  end
  local busy = number(status.running) + number(status.queued)
  local parts = { busy > 0 and string.format('oh-lsp: %d running, %d queued', number(status.running),
    number(status.queued)) or 'oh-lsp: idle' }
  parts[#parts + 1] = money(status.costToday) .. ' today'
  if has_rate(status) then
    parts[#parts + 1] = format.percent(status.successRate) .. ' ok'
  end
  local open = {}
  for _, breaker in ipairs(type(status.breakers) == 'table' and status.breakers or {}) do
    if breaker.state == 'open' then
      open[#open + 1] = breaker.model
    end
  end
  if #open > 0 then
    parts[#parts + 1] = 'BREAKER OPEN: ' .. table.concat(open, ', ')
  end
  local left = status.budgetLeftToday
  if type(left) == 'number' and left <= 0 then
    parts[#parts + 1] = 'BUDGET HIT'
  end
  local cooling = type(status.cooldowns) == 'table' and #status.cooldowns or 0
  if cooling > 0 then
    parts[#parts + 1] = string.format('%d cooling down', cooling)
  end
  if running and running.message then
    parts[#parts + 1] = running.title:gsub('^oh%-lsp: ', '') .. ': ' .. format.short(running.message)
  end
  return table.concat(parts, ' | ')
end

-- The status line: '' until a server sent its status. As it is, for `:echo` and a `%{...}` statusline item (whose
-- result Neovim shows as it is). `opts.escape = true` doubles `%` for a string that is read as statusline format
-- (`%{%...%}`); lualine, which calls this with its component object, gets that too (it shows a function
-- component's result as format). `opts.progress` (default true): add the running task's progress.
function M.status(opts)
  local lualine = type(opts) == 'table' and getmetatable(opts) ~= nil
  if type(opts) ~= 'table' or lualine then
    opts = {}
  end
  local status, client_id = M.data()
  if not status then
    return ''
  end
  local running
  if opts.progress ~= false then
    running = require('oh_lsp.progress').running(client_id)[1]
  end
  local text = M.text(status, running)
  if opts.escape or lualine then
    text = text:gsub('%%', '%%%%')
  end
  return text
end

return M
