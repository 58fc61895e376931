-- oh-lsp: user commands, and progress tracking for the statusline. The language server itself starts through
-- `vim.lsp.enable('oh_lsp')` or `require('oh_lsp').setup()`.
if vim.g.loaded_oh_lsp then
  return
end
vim.g.loaded_oh_lsp = true

if vim.fn.has('nvim-0.11') == 0 then
  vim.api.nvim_create_user_command('OhGenerateTests', function()
    vim.notify('oh-lsp needs Neovim 0.11 or newer (this is ' .. tostring(vim.version()) .. ')', vim.log.levels.ERROR)
  end, {})
  return
end

require('oh_lsp.commands').create()
require('oh_lsp.progress').listen()
