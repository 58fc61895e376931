-- :OhMetrics: the server's metrics summary in a scratch buffer.
local M = {}

local format = require('oh_lsp.format')
local num, money, pct = format.number, format.money, format.percent

-- "saved $x (y % cached)", as `oh-lsp metrics` says it: what the prompt caches and the result cache saved.
function M.savings(system)
  local hits = num(system.cache_hits)
  local text = string.format('  saved %s (%d %% cached)', money(system.saved_cost), math.floor(100 * num(system.cached_share) + 0.5))
  if hits > 0 then
    text = text .. string.format(', %d result%s from cache', hits, hits == 1 and '' or 's')
  end
  return text
end

-- The summary (`ohLsp.showMetrics`'s answer) as lines of text.
function M.lines(summary)
  summary = type(summary) == 'table' and summary or {}
  local system = type(summary.system) == 'table' and summary.system or {}
  local lines = {
    'oh-lsp metrics',
    '',
    'System',
    string.format('  executions %d  successful %d  failed %d  success rate %s', num(system.executions),
      num(system.successful), num(system.failed), pct(system.success_rate)),
    string.format('  tokens %d  cost %s  (today %s)', num(system.total_tokens), money(system.total_cost),
      money(system.cost_today)),
    M.savings(system),
    string.format('  average duration %.1fs  average quality %.2f/5', num(system.avg_duration_seconds),
      num(system.avg_quality_score)),
    'Models',
  }
  local names = vim.tbl_keys(type(summary.models) == 'table' and summary.models or {})
  table.sort(names)
  for _, name in ipairs(names) do
    local m = summary.models[name]
    lines[#lines + 1] = string.format('  %s: %d runs, %s ok, %d tokens, %s', name, num(m.executions),
      pct(m.success_rate), num(m.total_tokens), money(m.total_cost))
  end
  if #names == 0 then
    lines[#lines + 1] = '  (none yet)'
  end
  local states = type(summary.model_state) == 'table' and summary.model_state or {}
  local state_names = vim.tbl_keys(states)
  table.sort(state_names)
  if #state_names > 0 then
    lines[#lines + 1] = string.format('Model health (rotations: %d)', num(summary.rotations))
    for _, name in ipairs(state_names) do
      local s = states[name]
      local text = '  ' .. name .. ': breaker ' .. tostring(s.breaker)
      if num(s.cooldown_seconds_left) > 0 then
        text = text .. string.format(', cooling down %.1fs (%s)', s.cooldown_seconds_left, tostring(s.cooldown_reason))
      end
      lines[#lines + 1] = text
    end
  end
  local session = type(summary.session) == 'table' and summary.session or nil
  if session then
    lines[#lines + 1] = 'This session'
    lines[#lines + 1] = string.format('  queued %d  running %d  completed %d  failed %d  cancelled %d',
      num(session.queued), num(session.running), num(session.completed), num(session.failed), num(session.cancelled))
    lines[#lines + 1] = string.format('  tokens %d  cost %s  model %s', num(session.tokens), money(session.costSession),
      type(session.model) == 'string' and session.model or 'chosen per task')
    if type(session.budgetLeftToday) == 'number' then
      lines[#lines + 1] = '  budget left today ' .. money(session.budgetLeftToday)
    end
  end
  return lines
end

-- Show the summary in a scratch buffer in a split (reused by later calls); `q` closes it.
function M.show(summary)
  local lines = M.lines(summary)
  local buf = vim.fn.bufnr('oh-lsp://metrics')
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, 'oh-lsp://metrics')
    vim.bo[buf].bufhidden = 'hide'
    vim.bo[buf].filetype = 'ohlspmetrics'
    vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, desc = 'close the oh-lsp metrics' })
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  if vim.fn.bufwinid(buf) == -1 then
    vim.cmd('botright ' .. math.min(#lines, 20) .. 'split')
    vim.api.nvim_win_set_buf(0, buf)
  end
  return buf
end

return M
