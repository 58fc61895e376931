-- A rejected candidate, read-only: `oh-lsp://candidate/<taskId>/<attempt>/<path>`, whose text the server gives with
-- the `ohLsp/candidate` request (the editor contract). `:OhCandidate [taskId]` opens one; a location that points
-- into one (a diagnostic's related information) opens through the BufReadCmd below.
local client_of = require('oh_lsp.client')

local M = {}
local REQUEST = 'ohLsp/candidate'
local PATTERN = 'oh-lsp://candidate/*'
local texts = {} -- uri -> text, as the server gave it

-- `oh-lsp://candidate/<taskId>/<attempt>/<path>` -> { taskId, attempt }, or nil.
function M.parse(name)
  local task_id, attempt = tostring(name):match('^oh%-lsp://candidate/([^/]+)/(%d+)/')
  if not task_id then
    task_id = tostring(name):match('^oh%-lsp://candidate/([^/]+)')
  end
  return task_id and { taskId = task_id, attempt = tonumber(attempt) } or nil
end

-- Fill `buf` with the candidate's text: Python, not a file, read-only.
local function fill(buf, text)
  local lines = vim.split(text or '', '\n', { plain = true })
  if lines[#lines] == '' then
    lines[#lines] = nil
  end
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].swapfile = false
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].readonly = true
  vim.bo[buf].modified = false
  vim.bo[buf].filetype = 'python'
end

local function failed(params, err)
  client_of.notify('the rejected candidate of task ' .. tostring(params.taskId) .. ' cannot be shown: '
    .. (type(err) == 'table' and (err.message or vim.inspect(err)) or tostring(err)), vim.log.levels.ERROR)
end

-- Ask the server for the candidate `params` ({taskId, attempt?, segment?}) and open it in the current window.
function M.open(client, params)
  if not client or type(params) ~= 'table' or not params.taskId then
    client_of.notify('ohLsp.openCandidate needs {taskId, attempt?}', vim.log.levels.ERROR)
    return
  end
  client:request(REQUEST, params, function(err, result)
    if err or type(result) ~= 'table' or type(result.uri) ~= 'string' then
      return failed(params, err or 'the server gave no candidate')
    end
    texts[result.uri] = result.text or ''
    vim.cmd.edit(vim.fn.fnameescape(result.uri))
  end)
end

-- :OhCandidate [taskId]: the rejected candidate of that task, else of the newest failed task.
local function command(opts)
  local client = client_of.need(0, true)
  if not client then
    return
  end
  local task_id = vim.trim(opts.args)
  if task_id ~= '' then
    return M.open(client, { taskId = task_id })
  end
  client_of.execute(client, 'ohLsp.listTasks', { status = 'failed' }, function(tasks)
    if type(tasks) ~= 'table' or #tasks == 0 then
      client_of.notify('no task has failed, so there is no rejected candidate to open')
      return
    end
    M.open(client, { taskId = tasks[1].taskId })
  end)
end

function M.create()
  vim.api.nvim_create_user_command('OhCandidate', command, { nargs = '?',
    desc = "oh-lsp: open a failed task's rejected candidate, read-only (default: the newest failed task)" })
  local group = vim.api.nvim_create_augroup('oh_lsp_candidate', { clear = true })
  vim.api.nvim_create_autocmd('BufReadCmd', { group = group, pattern = PATTERN, callback = function(ev)
    local name = ev.match
    if texts[name] then
      return fill(ev.buf, texts[name])
    end
    local params = M.parse(name)
    local client = client_of.get(nil, true)
    if not params or not client then
      return failed(params or { taskId = name }, 'no oh-lsp server is running')
    end
    local answer = client:request_sync(REQUEST, params, 10000)
    if not answer or answer.err or type(answer.result) ~= 'table' then
      return failed(params, answer and answer.err or 'no answer')
    end
    texts[name] = answer.result.text or ''
    fill(ev.buf, texts[name])
  end })
end

return M
