-- The client configuration of oh-lsp: what `lsp/oh_lsp.lua` gives `vim.lsp.config`, and how `setup()` options
-- become a configuration.
local M = {}

M.name = 'oh_lsp' -- the client's name: `vim.lsp.config('oh_lsp', ...)`, `vim.lsp.enable('oh_lsp')`
M.section = 'ohLsp' -- the settings section the server reads

-- Settings sent unless the user says otherwise. Neovim has no workspace trust, so the plugin trusts the
-- workspaces it is started in: the server runs the generated tests (in a sandbox copy of the project). Set
-- `trusted = false` to keep generated code from running at all (static checks only).
M.default_settings = { trusted = true }

-- Client-side options of the plugin (not sent to the server).
M.options = {
  notify = true, -- say how each task ended (`vim.notify`), with the file written, the score and the cost
}

-- Neovim 0.11 skips a `CreateFile` that has `ignoreIfExists` (the file only becomes a buffer, its folder is not
-- made), so a new `tests/pkg/__init__.py` never reaches the disk and `:w` of a new test file fails (E212). Create
-- such files (empty, with their folders) before Neovim applies the edit; an existing file is left alone.
local function create_missing_files(edit)
  local created = {}
  for _, change in ipairs(type(edit) == 'table' and edit.documentChanges or {}) do
    if change.kind == 'create' and type(change.uri) == 'string' then
      local path = vim.uri_to_fname(change.uri)
      if not vim.uv.fs_stat(path) then
        vim.fn.mkdir(vim.fs.dirname(path), 'p')
        local file = io.open(path, 'a')
        if file then
          file:close()
          created[#created + 1] = path
        end
      end
    end
  end
  return created
end

-- Text inserted into an empty buffer keeps its final newline as an empty last line, which `:w` would save as a
-- second newline. A file this edit created holds exactly the edit's text: drop that line (in the same undo step).
local function drop_extra_last_line(path)
  local buf = vim.fn.bufnr(path)
  if buf <= 0 or not vim.api.nvim_buf_is_loaded(buf) then
    return
  end
  local count = vim.api.nvim_buf_line_count(buf)
  if count > 1 and vim.api.nvim_buf_get_lines(buf, count - 1, count, false)[1] == '' then
    vim.api.nvim_buf_call(buf, function()
      pcall(vim.cmd.undojoin)
    end)
    vim.api.nvim_buf_set_lines(buf, count - 1, count, false, {})
  end
end

-- `workspace/applyEdit`: reviewed first (a diff in a float, when `reviewEdits` is on), then applied by Neovim;
-- the files it created are written, so that they are on disk and not only in buffers.
local function apply_edit(err, params, ctx, cfg)
  local review = require('oh_lsp.review')
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if not err and type(params) == 'table' and type(params.edit) == 'table' and review.wanted(client) then
    if not review.review(params, client) then
      return { applied = false, failureReason = 'discarded in the review' }
    end
  end
  local created = {}
  if not err and type(params) == 'table' then
    created = create_missing_files(params.edit)
  end
  local result = vim.lsp.handlers['workspace/applyEdit'](err, params, ctx, cfg)
  if type(result) == 'table' and result.applied then
    for _, path in ipairs(created) do
      drop_extra_last_line(path)
    end
    review.write_created(created)
  end
  return result
end

-- The configuration `lsp/oh_lsp.lua` returns (Neovim 0.11 merges it with `vim.lsp.config('oh_lsp', {...})`).
function M.defaults()
  return {
    cmd = { 'oh-lsp', 'serve' },
    filetypes = { 'python' },
    root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
    settings = { [M.section] = vim.deepcopy(M.default_settings) },
    handlers = {
      ['workspace/applyEdit'] = apply_edit,
      ['ohLsp/status'] = function(...)
        return require('oh_lsp.status').handler(...)
      end,
      ['ohLsp/taskEnded'] = function(...)
        return require('oh_lsp.outcome').handler(...)
      end,
    },
    -- client-side commands: the server's "Refactor <name>…" code action carries ohLsp.refactorPrompt
    commands = {
      ['ohLsp.refactorPrompt'] = function(...)
        return require('oh_lsp.commands').refactor_prompt(...)
      end,
      ['ohLsp.openCandidate'] = function(command, ctx)
        local args = (command.arguments or {})[1] or {}
        return require('oh_lsp.candidate').open(vim.lsp.get_client_by_id(ctx.client_id), args)
      end,
    },
    -- the server reads its settings at start from `initializationOptions`: send the same section as `settings`
    before_init = function(params, config)
      local section = (config.settings or {})[M.section] or {}
      params.initializationOptions = vim.tbl_deep_extend('force', params.initializationOptions or {},
        { [M.section] = section })
    end,
  }
end

-- `settings` as given to setup(): the `ohLsp` section itself, or a table holding it.
local function section_of(settings)
  if type(settings) ~= 'table' then
    return nil
  end
  if type(settings[M.section]) == 'table' then
    return settings[M.section]
  end
  return settings
end

-- Keys of setup() that are passed to `vim.lsp.config` as they are.
local CLIENT_KEYS = { 'cmd', 'cmd_env', 'cmd_cwd', 'filetypes', 'root_markers', 'root_dir', 'on_attach', 'on_init',
  'on_exit', 'capabilities', 'workspace_required' }

-- setup() options -> (a `vim.lsp.config` table, plugin options)
function M.from_setup(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then
    error('oh_lsp.setup() takes a table of options', 3)
  end
  local client = {}
  for _, key in ipairs(CLIENT_KEYS) do
    client[key] = opts[key]
  end
  local section = section_of(opts.settings)
  if opts.settings ~= nil and section == nil then
    error('oh_lsp.setup(): settings must be a table (the ohLsp section, e.g. { model = "mistral-small" })', 3)
  end
  if section then
    client.settings = { [M.section] = section }
  end
  local plugin = {}
  for key in pairs(M.options) do
    if opts[key] ~= nil then
      plugin[key] = opts[key]
    end
  end
  return client, plugin
end

return M
