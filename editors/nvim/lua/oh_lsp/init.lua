-- oh-lsp for Neovim: setup(), the statusline string, and the pieces for custom statuslines. See :help oh_lsp.
local M = {}

-- Configure and enable the oh-lsp client (Neovim 0.11+). `opts`: `cmd`, `settings` (the `ohLsp` section),
-- `filetypes`, `root_markers`, `root_dir`, `on_attach`, `capabilities`, `cmd_env`, `notify` (plugin option), and
-- `enable = false` to configure without enabling.
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('oh-lsp needs Neovim 0.11 or newer (this is ' .. tostring(vim.version()) .. ')', vim.log.levels.ERROR)
    return
  end
  local config = require('oh_lsp.config')
  local client, plugin = config.from_setup(opts)
  config.options = vim.tbl_extend('force', config.options, plugin)
  vim.lsp.config(config.name, client)
  if not (opts and opts.enable == false) then
    vim.lsp.enable(config.name)
  end
end

-- The status line, e.g. `oh-lsp: idle | $0.0015 today | 92% ok`. Right as it is for `:echo` and a `%{...}`
-- statusline item; lualine (`sections = { lualine_x = { require('oh_lsp').status } }`) gets `%` escaped by itself;
-- `status({ escape = true })` for `%{%...%}`. See :help oh_lsp.status().
function M.status(opts)
  return require('oh_lsp.status').status(opts)
end

-- The last `ohLsp/status` payload (a table, or nil before the server sent one), for custom statuslines.
function M.status_data(bufnr)
  return (require('oh_lsp.status').data(bufnr))
end

-- The running oh-lsp tasks' progress: `{ {title, message, token, task_id, client_id}, ... }`, oldest first.
function M.running()
  return require('oh_lsp.progress').running()
end

return M
