-- Number and text formats shared by the statusline, :OhMetrics and the messages: the same as the VS Code extension's
-- (editors/vscode/src/format.ts), so that both editors read `$0.0015` and `92% ok`.
local M = {}

-- `value` when it is a number, else 0 (JSON null arrives as vim.NIL).
function M.number(value)
  return type(value) == 'number' and value or 0
end

-- `$0.0015`, `$0.25`, `$0.125`, `$12.40`; `$0.00` for nothing; `<$0.0001` for a cost too small to show.
function M.money(value)
  value = M.number(value)
  if value ~= value or value <= 0 then
    return '$0.00'
  end
  if value < 0.0001 then
    return '<$0.0001'
  end
  if value >= 1 then
    return string.format('$%.2f', value)
  end
  local whole, fraction = string.format('%.4f', value):match('^(%d+)%.(%d+)$')
  fraction = fraction:gsub('0+$', '')
  fraction = fraction .. string.rep('0', math.max(0, 2 - #fraction))
  return '$' .. whole .. '.' .. fraction
end

-- 0.916 -> '92%'
function M.percent(ratio)
  return string.format('%d%%', math.floor(math.max(0, math.min(1, M.number(ratio))) * 100 + 0.5))
end

M.PROGRESS_MAX = 60 -- the contract: progress text is at most 60 characters

-- `text` on one line and at most `max` characters: cut at a word boundary where one is near, with `…`.
function M.short(text, max)
  max = max or M.PROGRESS_MAX
  local line = vim.trim(tostring(text or ''):gsub('%s+', ' '))
  if vim.fn.strchars(line) <= max then
    return line
  end
  local cut = vim.fn.strcharpart(line, 0, max - 1)
  local after = vim.fn.strcharpart(line, max - 1, 1)
  local space = after == ' ' and #cut or (cut:match('.*() ') or 0) - 1
  if space >= max * 0.6 then
    cut = cut:sub(1, space)
  end
  return (cut:gsub('[%s,;:(%-]+$', '')) .. '…'
end

return M
