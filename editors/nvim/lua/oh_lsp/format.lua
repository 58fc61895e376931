-- Number formats shared by the statusline and :OhMetrics (the same as the `oh-lsp` command line's).
local M = {}

-- `value` when it is a number, else 0 (JSON null arrives as vim.NIL).
function M.number(value)
  return type(value) == 'number' and value or 0
end

function M.money(value)
  value = M.number(value)
  return value < 0.01 and string.format('$%.6f', value) or string.format('$%.4f', value)
end

-- 0.923 -> '92%'
function M.percent(ratio)
  return string.format('%d%%', math.floor(M.number(ratio) * 100 + 0.5))
end

return M
