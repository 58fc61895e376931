-- How a task ended, from the server's `ohLsp/taskEnded` notification: `:OhResult` opens the file it delivered (the
-- tests), `:OhResult!` shows the details (score, tests kept and dropped, coverage before -> after, cost).
local client_of = require('oh_lsp.client')
local format = require('oh_lsp.format')

local M = {}
local latest -- the last outcome
local by_task = {} -- taskId -> outcome

function M.handler(_, result, _)
  if type(result) == 'table' and result.taskId then
    latest = result
    by_task[result.taskId] = result
  end
end

-- The outcome of `task_id` (once the server sent it), else nil.
function M.of(task_id)
  return by_task[task_id]
end

-- The details of an outcome, as lines.
function M.lines(outcome)
  local lines = { string.format('oh-lsp: %s for %s', tostring(outcome.kind), tostring(outcome.target or 'the file')),
    '', 'Status: ' .. tostring(outcome.status) .. (type(outcome.delivery) == 'string' and (' (' .. outcome.delivery .. ')') or '') }
  if type(outcome.outputFile) == 'string' then
    lines[#lines + 1] = 'Result: ' .. outcome.outputFile
  end
  if type(outcome.score) == 'number' then
    lines[#lines + 1] = string.format('Score: %.2f', outcome.score)
  end
  local function percent(value)
    return math.floor(value + 0.5) .. '%'
  end
  if type(outcome.coverage) == 'table' then
    lines[#lines + 1] = 'Line coverage of the target: ' .. percent(outcome.coverage.before) .. ' -> '
      .. percent(outcome.coverage.after)
  end
  local mutation = outcome.mutation
  if type(mutation) == 'table' and type(mutation.after) == 'number' then
    lines[#lines + 1] = 'Mutants of the target detected: '
      .. (type(mutation.before) == 'number' and (percent(mutation.before) .. ' -> ') or '') .. percent(mutation.after)
  end
  lines[#lines + 1] = 'Cost: ' .. format.money(outcome.cost) .. (type(outcome.model) == 'string' and (' (' .. outcome.model .. ')') or '')
  if type(outcome.error) == 'string' then
    lines[#lines + 1] = 'Why it failed: ' .. outcome.error
  end
  local function section(title, items, line_of)
    items = type(items) == 'table' and items or {}
    if #items > 0 then
      vim.list_extend(lines, { '', string.format('%s (%d):', title, #items) })
      vim.list_extend(lines, vim.tbl_map(line_of, items))
    end
  end
  section('Tests kept', outcome.testsKept, function(name) return '  ' .. tostring(name) end)
  section('Tests dropped', outcome.testsDropped, function(test)
    return '  ' .. tostring(test.name) .. ': ' .. tostring(test.reason)
  end)
  return lines
end

local function command(opts)
  if not latest then
    client_of.notify('no task has ended with a result yet')
    return
  end
  if not opts.bang then
    if type(latest.outputUri) == 'string' and latest.written ~= false then
      vim.cmd.edit(vim.fn.fnameescape(vim.uri_to_fname(latest.outputUri)))
    else
      client_of.notify('the last task delivered no file (' .. tostring(latest.status) .. '); :OhResult! for the details')
    end
    return
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, M.lines(latest))
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = 'wipe'
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, desc = 'close the oh-lsp details' })
  vim.cmd('botright split')
  vim.api.nvim_win_set_buf(0, buf)
end

function M.create()
  vim.api.nvim_create_user_command('OhResult', command, { nargs = 0, bang = true,
    desc = 'oh-lsp: open the file the last task delivered (! the details)' })
end

return M
