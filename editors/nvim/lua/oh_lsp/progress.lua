-- oh-lsp's work-done progress, as Neovim's LSP client receives it (`$/progress` -> the `LspProgress` autocmd):
-- which tasks are running, with their latest message, for the statusline and :OhCancel.
local config = require('oh_lsp.config')

local M = {}

local active = {} -- "client_id:token" -> { client_id, token, title, message, seq, task_id }
local task_ids = {} -- "client_id:token" -> task id (from the answers to task-starting commands)
local seq = 0

local function key(client_id, token)
  return tostring(client_id) .. ':' .. tostring(token)
end

-- A task-starting command answered `{taskId, progressToken}`.
function M.remember(client_id, token, task_id)
  if token ~= nil then
    task_ids[key(client_id, token)] = task_id
    local entry = active[key(client_id, token)]
    if entry then
      entry.task_id = task_id
    end
  end
end

-- The `LspProgress` autocmd: keep track of oh-lsp's progress tokens.
function M.on_progress(ev)
  local data = ev.data or {}
  local client = vim.lsp.get_client_by_id(data.client_id)
  local params = data.params or {}
  local value = params.value
  if not client or client.name ~= config.name or type(value) ~= 'table' then
    return
  end
  local k = key(client.id, params.token)
  if value.kind == 'begin' then
    seq = seq + 1
    active[k] = { client_id = client.id, token = params.token, title = value.title or 'oh-lsp', message = value.message,
      seq = seq, task_id = task_ids[k] }
  elseif value.kind == 'report' and active[k] then
    active[k].message = value.message or active[k].message
  elseif value.kind == 'end' then
    local entry = active[k]
    active[k] = nil
    task_ids[k] = nil
    if entry and config.options.notify and value.message then
      local failed = value.message:match('^failed') or value.message:match('not applied')
      local hint = ''
      if entry.task_id and require('oh_lsp.outcome').of(entry.task_id) then
        hint = failed and ' (:OhResult! for the details, :OhCandidate for the rejected candidate)'
          or ' (:OhResult opens it, :OhResult! for the details)'
      end
      vim.notify(entry.title .. ': ' .. value.message .. hint, failed and vim.log.levels.WARN or vim.log.levels.INFO)
    end
  end
  require('oh_lsp.status').changed()
end

-- The running oh-lsp progresses (of `client_id`, else of every client), oldest first.
function M.running(client_id)
  local list = {}
  for _, entry in pairs(active) do
    local client = vim.lsp.get_client_by_id(entry.client_id)
    if client and not client:is_stopped() and (client_id == nil or entry.client_id == client_id) then
      list[#list + 1] = entry
    end
  end
  table.sort(list, function(a, b)
    return a.seq < b.seq
  end)
  return list
end

-- Ask the server to cancel these progresses (`window/workDoneProgress/cancel`: it cancels their tasks).
function M.cancel(entries)
  for _, entry in ipairs(entries) do
    local client = vim.lsp.get_client_by_id(entry.client_id)
    if client then
      client:notify('window/workDoneProgress/cancel', { token = entry.token })
    end
  end
end

function M.listen()
  local group = vim.api.nvim_create_augroup('oh_lsp_progress', { clear = true })
  vim.api.nvim_create_autocmd('LspProgress', { group = group, callback = M.on_progress })
end

return M
