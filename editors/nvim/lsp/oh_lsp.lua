-- oh-lsp for Neovim 0.11's `vim.lsp.config` / `vim.lsp.enable`:
--
--   vim.lsp.config('oh_lsp', { settings = { ohLsp = { model = 'mistral-small' } } })  -- optional
--   vim.lsp.enable('oh_lsp')
--
-- See `:help oh_lsp`.
return require('oh_lsp.config').defaults()
