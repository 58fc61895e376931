-- Results you review (`reviewEdits`, on by default, the same setting as in VS Code): before an edit from the
-- server is applied, a float shows it as a diff (`vim.diff`); `a` applies it, `q` discards it. Neovim answers the
-- server's `workspace/applyEdit` once you chose (its handler runs in a coroutine that can wait).
local M = {}

local config = require('oh_lsp.config')

-- Whether `client` reviews edits (the `reviewEdits` setting; unset: true).
function M.wanted(client)
  local settings = client and (client.settings or client.config.settings) or {}
  local section = settings[config.section] or {}
  return section.reviewEdits ~= false
end

local function file_lines(uri)
  local name = vim.uri_to_fname(uri)
  local buf = vim.fn.bufnr(name)
  if buf > 0 and vim.api.nvim_buf_is_loaded(buf) then
    return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  end
  if vim.fn.filereadable(name) == 1 then
    return vim.fn.readfile(name)
  end
  return nil -- it does not exist yet
end

-- The files of `edit`, each with its text before and after: `{ {uri, before (nil: new), after} }`, in order.
function M.files(edit, encoding)
  local order, edits, created = {}, {}, {}
  local function add(uri, text_edits)
    if not edits[uri] then
      order[#order + 1] = uri
      edits[uri] = {}
    end
    vim.list_extend(edits[uri], text_edits or {})
  end
  for _, change in ipairs(edit.documentChanges or {}) do
    if change.kind == 'create' then
      created[change.uri] = true
      add(change.uri)
    elseif change.textDocument then
      add(change.textDocument.uri, change.edits)
    end
  end
  for uri, text_edits in pairs(edit.changes or {}) do
    add(uri, text_edits)
  end
  local files = {}
  for _, uri in ipairs(order) do
    local before = not created[uri] and file_lines(uri) or nil
    local scratch = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_lines(scratch, 0, -1, false, before or {})
    if #edits[uri] > 0 then
      vim.lsp.util.apply_text_edits(edits[uri], scratch, encoding)
    end
    local after = vim.api.nvim_buf_get_lines(scratch, 0, -1, false)
    vim.api.nvim_buf_delete(scratch, { force = true })
    if after[#after] == '' and #after > 1 then
      after[#after] = nil -- an edit's final newline
    end
    files[#files + 1] = { uri = uri, before = before, after = after }
  end
  return files
end

-- The review's text: a unified diff per file.
function M.diff_lines(files)
  local lines = {}
  local root = vim.fn.getcwd()
  for _, file in ipairs(files) do
    local name = vim.fn.fnamemodify(vim.uri_to_fname(file.uri), ':.')
    if vim.startswith(name, root) then
      name = name:sub(#root + 2)
    end
    local before = file.before and (table.concat(file.before, '\n') .. '\n') or ''
    local after = #file.after > 0 and (table.concat(file.after, '\n') .. '\n') or ''
    lines[#lines + 1] = (file.before and 'changed: ' or 'new file: ') .. name
    lines[#lines + 1] = '--- ' .. (file.before and ('a/' .. name) or '/dev/null')
    lines[#lines + 1] = '+++ b/' .. name
    local diff = vim.diff(before, after, { result_type = 'unified', ctxlen = 3 })
    for _, line in ipairs(vim.split(diff, '\n', { trimempty = true })) do
      lines[#lines + 1] = line
    end
    if diff == '' then
      lines[#lines + 1] = '(empty file)'
    end
    lines[#lines + 1] = ''
  end
  return lines
end

local shown -- { buf, win, lines, title } while a review is open

-- The review on screen, or nil.
function M.showing()
  return shown
end

local function open_float(lines, title)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].filetype = 'diff'
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = 'wipe'
  local longest = 0
  for _, line in ipairs(lines) do
    longest = math.max(longest, vim.fn.strdisplaywidth(line))
  end
  local width = math.max(40, math.min(longest + 2, vim.o.columns - 4))
  local height = math.max(1, math.min(#lines, vim.o.lines - 6))
  local win = vim.api.nvim_open_win(buf, true, {
    relative = 'editor', width = width, height = height, style = 'minimal', border = 'rounded',
    row = math.floor((vim.o.lines - height) / 2) - 1, col = math.floor((vim.o.columns - width) / 2),
    title = ' ' .. title .. ' ', title_pos = 'center',
    footer = ' a: apply   q: discard ', footer_pos = 'center',
  })
  return buf, win
end

-- Shows `params.edit` for review and waits (in the handler's coroutine) for the choice: true to apply.
function M.review(params, client)
  local co = coroutine.running()
  if not co or not coroutine.isyieldable() then
    return true -- nowhere to wait: applied as before (undo takes it back)
  end
  local files = M.files(params.edit, client.offset_encoding)
  if #files == 0 then
    return true
  end
  local title = 'review: ' .. (params.label or 'oh-lsp')
  local lines = M.diff_lines(files)
  local buf, win = open_float(lines, title)
  shown = { buf = buf, win = win, lines = lines, title = title }
  local answered = false
  local function answer(apply)
    if answered then
      return
    end
    answered = true
    shown = nil
    if vim.api.nvim_win_is_valid(win) then
      vim.api.nvim_win_close(win, true)
    end
    vim.schedule(function()
      local ok, err = coroutine.resume(co, apply)
      if not ok then
        vim.notify('oh-lsp: applying the edit failed: ' .. tostring(err), vim.log.levels.ERROR)
      end
    end)
  end
  for _, key in ipairs({ 'a', '<CR>' }) do
    vim.keymap.set('n', key, function() answer(true) end, { buffer = buf, nowait = true, desc = 'oh-lsp: apply' })
  end
  for _, key in ipairs({ 'q', '<Esc>', 'd' }) do
    vim.keymap.set('n', key, function() answer(false) end, { buffer = buf, nowait = true, desc = 'oh-lsp: discard' })
  end
  vim.api.nvim_create_autocmd('WinClosed', { pattern = tostring(win), once = true, callback = function()
    answer(false) -- closed another way (:q): nothing is applied
  end })
  vim.api.nvim_exec_autocmds('User', { pattern = 'OhLspReview', modeline = false })
  return coroutine.yield()
end

-- After an applied edit: write the buffers of the files it created, so that they are on disk (for pytest, git and
-- the shell), with exactly the checked text (no autocommands: a formatter on save would change it).
function M.write_created(paths)
  local written = {}
  for _, path in ipairs(paths) do
    local buf = vim.fn.bufnr(path)
    if buf > 0 and vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].modified then
      local ok, err = pcall(vim.api.nvim_buf_call, buf, function()
        vim.cmd('silent noautocmd write')
      end)
      if ok then
        written[#written + 1] = path
      else
        vim.notify('oh-lsp: could not write ' .. path .. ': ' .. tostring(err), vim.log.levels.WARN)
      end
    end
  end
  return written
end

return M
