-- Drives the oh-lsp plugin in a real headless Neovim as a user would: code actions, the :Oh* commands, prompts
-- answered by a script (vim.ui.input / vim.ui.select), progress, edits, diagnostics, cancel, statusline, help.
-- Run by tests/editors/test_nvim.py, which checks what this writes to $OH_TEST_RESULT.
local env = vim.env
local project = env.OH_TEST_PROJECT
local out = { notifications = {}, statuslines = {}, statuses = {}, progress = {}, steps = {} }

local function record_notify(msg, level)
  table.insert(out.notifications, { msg = msg, level = level })
end
vim.notify = record_notify

local function save_and_quit(code)
  local fh = assert(io.open(env.OH_TEST_RESULT, 'w'))
  fh:write(vim.json.encode(out))
  fh:close()
  vim.cmd((code == 0 and 'qa!') or ('cquit ' .. code))
end

local function step(name)
  out.steps[#out.steps + 1] = { name = name, t = vim.uv.hrtime() / 1e9 }
end

local function wait(what, timeout_ms, check)
  local ok = vim.wait(timeout_ms, check, 20)
  if not ok then
    error('timed out after ' .. timeout_ms .. ' ms waiting for ' .. what, 2)
  end
end

-- A part whose failure is written down (and checked by its own test) instead of stopping the flow.
out.optional_errors = {}
local function optional(name, part)
  local ok, err = pcall(part)
  if not ok then
    out.optional_errors[name] = tostring(err)
  end
end

-- The review float of the next edit: what it shows, and the key a user presses in it ('a' applies, 'q' discards).
local function review(key)
  wait('the review float', 60000, function() return require('oh_lsp.review').showing() ~= nil end)
  local shown = require('oh_lsp.review').showing()
  local seen = { title = shown.title, lines = shown.lines, filetype = vim.bo[shown.buf].filetype,
    in_float = vim.api.nvim_get_current_win() == shown.win
      and vim.api.nvim_win_get_config(shown.win).relative == 'editor' }
  vim.api.nvim_feedkeys(key, 'x', false)
  wait('the review to close', 5000, function() return require('oh_lsp.review').showing() == nil end)
  return seen
end

-- every status the server sends, and the statusline string right after it
vim.api.nvim_create_autocmd('User', {
  pattern = 'OhLspStatus',
  callback = function()
    local oh = require('oh_lsp')
    local line = oh.status()
    if out.statuslines[#out.statuslines] ~= line then
      out.statuslines[#out.statuslines + 1] = line
    end
    out.statuses[#out.statuses + 1] = oh.status_data()
  end,
})
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(ev)
    local v = ev.data.params.value
    table.insert(out.progress, { token = ev.data.params.token, kind = v.kind, title = v.title,
      message = v.message, cancellable = v.cancellable })
  end,
})

local function progress_of(title_part, after)
  local token
  for i = after + 1, #out.progress do
    local p = out.progress[i]
    if p.kind == 'begin' and p.title:find(title_part, 1, true) then
      token = p.token
    end
  end
  local found = {}
  for i = after + 1, #out.progress do
    if token ~= nil and out.progress[i].token == token then
      found[#found + 1] = out.progress[i]
    end
  end
  return found
end

local function ended(title_part, after)
  local found = progress_of(title_part, after)
  local last = found[#found]
  return last and last.kind == 'end' and last or nil
end

local function lines(path)
  local buf = vim.fn.bufnr(path)
  return buf > 0 and vim.api.nvim_buf_get_lines(buf, 0, -1, false) or nil
end

local function oh_diagnostics(buf)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.source == 'oh-lsp' then
      found[#found + 1] = { code = d.code, lnum = d.lnum, severity = d.severity, message = d.message }
    end
  end
  return found
end

local function run()
  step('open')
  vim.cmd('edit ' .. project .. '/pkg/calc.py')
  local buf = vim.api.nvim_get_current_buf()
  out.filetype = vim.bo[buf].filetype
  wait('the oh-lsp client to attach', 10000, function()
    return #vim.lsp.get_clients({ name = 'oh_lsp', bufnr = buf }) == 1
  end)
  local client = vim.lsp.get_clients({ name = 'oh_lsp', bufnr = buf })[1]
  out.client = vim.deepcopy({ cmd = client.config.cmd, root_dir = client.config.root_dir, settings = client.config.settings,
    init_options = client.config.init_options })
  wait('the first ohLsp/status', 20000, function()
    return #out.statuses > 0
  end)
  out.first_statusline = require('oh_lsp').status()

  step('code actions')
  vim.api.nvim_win_set_cursor(0, { 5, 4 }) -- inside `def add`
  local answers = vim.lsp.buf_request_sync(buf, 'textDocument/codeAction', {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = 4, character = 4 }, ['end'] = { line = 4, character = 4 } },
    context = { diagnostics = {} },
  }, 10000)
  out.code_actions = {}
  for _, action in ipairs(answers[client.id].result or {}) do
    out.code_actions[#out.code_actions + 1] = { title = action.title, kind = action.kind,
      command = action.command and action.command.command }
  end

  -- 1. the module's "Generate tests" code action, applied the way a user picks it
  step('generate tests (code action)')
  local mark = #out.progress
  vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title == 'Generate tests for pkg.calc' end })
  wait('a running task and its progress in the statusline', 20000, function()
    local line = require('oh_lsp').status()
    return line:find('1 running', 1, true) ~= nil and line:find('Generate tests for', 1, true) ~= nil
  end)
  out.statusline_while_running = require('oh_lsp').status()
  local test_file = project .. '/tests/pkg/test_calc.py'
  wait('the edit to arrive', 60000, function() return require('oh_lsp.review').showing() ~= nil end)
  out.on_disk_during_review = vim.fn.filereadable(test_file) == 1
  out.review_generate = review('a')
  wait('the progress to end', 60000, function() return ended('Generate tests for pkg/calc.py', mark) end)
  out.generate = progress_of('Generate tests for pkg/calc.py', mark)
  wait('the generated test file in a buffer', 5000, function() return lines(test_file) ~= nil end)
  out.generated_buffer = lines(test_file)
  out.generated_modified = vim.bo[vim.fn.bufnr(test_file)].modified
  -- no :write here: the file is on disk because the plugin wrote it
  out.generated_on_disk = vim.fn.filereadable(test_file) == 1 and vim.fn.readfile(test_file) or vim.NIL
  wait('a status counting the completed task', 5000, function()
    local s = require('oh_lsp').status_data()
    return s and s.completed >= 1 and s.running == 0
  end)
  out.statusline_after_generate = require('oh_lsp').status()
  -- the three uses of status() the docs give: a %{...} statusline item, a lualine component, :echo
  local item = "%{v:lua.require'oh_lsp'.status()}"
  out.rendered_item = vim.api.nvim_eval_statusline(item, {}).str
  local component = setmetatable({ options = { component_name = 'oh_lsp' } }, { __index = {} }) -- lualine's self
  out.lualine_result = require('oh_lsp').status(component, true) -- as lualine's function component calls it
  out.rendered_lualine = vim.api.nvim_eval_statusline('%#StatusLine#' .. out.lualine_result .. ' %=', {}).str
  out.echoed = vim.api.nvim_exec2("echo v:lua.require'oh_lsp'.status()", { output = true }).output
  out.escaped_for_format = require('oh_lsp').status({ escape = true })
  out.rendered_format = vim.api.nvim_eval_statusline("%{%v:lua.require'oh_lsp'.status({'escape': v:true})%}", {}).str
  optional('result', function()
    vim.cmd('OhResult')
    wait('the tests opened by :OhResult', 2000, function() return vim.api.nvim_buf_get_name(0) == test_file end)
    out.result_opened = vim.api.nvim_buf_get_name(0)
    vim.cmd('OhResult!') -- the details of the same task, from the server's ohLsp/taskEnded
    out.result_details = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    vim.cmd('close')
  end)
  vim.cmd('edit ' .. project .. '/pkg/calc.py')

  -- 2. a failing case, from the user command with a symbol: diagnostics on the target
  step('failing case')
  mark = #out.progress
  vim.cmd('OhGenerateTests divide')
  wait('the failing task to end', 60000, function() return ended('Generate tests for divide', mark) end)
  out.failing = progress_of('Generate tests for divide', mark)
  wait('oh-lsp diagnostics on calc.py', 10000, function() return #oh_diagnostics(buf) >= 2 end)
  out.diagnostics = oh_diagnostics(buf)

  -- 2b. the same failing test for the whole module: its diagnostic belongs at the function it tests
  step('failing case (module)')
  mark = #out.progress
  vim.cmd('OhGenerateTests')
  wait('the failing module task to end', 60000, function() return ended('Generate tests for pkg/calc.py', mark) end)
  out.module_failing = progress_of('Generate tests for pkg/calc.py', mark)
  wait('its diagnostics', 10000, function()
    for _, d in ipairs(oh_diagnostics(buf)) do
      if d.code == 'test-failed' then return true end
    end
  end)
  out.module_diagnostics = oh_diagnostics(buf)

  -- 2c. the rejected candidate, read-only
  step('candidate')
  local failed = client:request_sync('workspace/executeCommand',
    { command = 'ohLsp.listTasks', arguments = { { status = 'failed' } } }, 10000, buf).result
  out.failed_task = failed[1].taskId
  local notes_before = #out.notifications
  optional('candidate', function()
    vim.cmd('OhCandidate ' .. failed[1].taskId)
    wait('the candidate buffer', 10000, function()
      return vim.api.nvim_buf_get_name(0):find('^oh%-lsp://candidate/') ~= nil or #out.notifications > notes_before
    end)
    local name = vim.api.nvim_buf_get_name(0)
    if not name:find('^oh%-lsp://candidate/') then
      error(out.notifications[#out.notifications].msg)
    end
    out.candidate = { name = name, lines = vim.api.nvim_buf_get_lines(0, 0, -1, false), buftype = vim.bo.buftype,
      readonly = vim.bo.readonly, modifiable = vim.bo.modifiable, filetype = vim.bo.filetype }
  end)
  out.candidate_notifications = vim.list_slice(out.notifications, notes_before + 1)
  vim.cmd('edit ' .. project .. '/pkg/calc.py')
  -- the same from the failure's quick fix (on `def divide`, where the diagnostic is): ohLsp.openCandidate
  optional('candidate_fix', function()
    vim.api.nvim_win_set_cursor(0, { 8, 0 })
    vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title == 'Open the rejected candidate' end })
    wait('the candidate buffer from the quick fix', 10000, function()
      return vim.api.nvim_buf_get_name(0):find('^oh%-lsp://candidate/') ~= nil
    end)
    out.candidate_from_fix = vim.api.nvim_buf_get_name(0)
  end)
  vim.cmd('edit ' .. project .. '/pkg/calc.py')
  -- a task with no rejected candidate (it completed): one message, and the window stays where it was
  local completed = client:request_sync('workspace/executeCommand',
    { command = 'ohLsp.listTasks', arguments = { { status = 'completed' } } }, 10000, buf).result
  out.completed_task = completed[1].taskId
  notes_before = #out.notifications
  vim.cmd('OhCandidate ' .. out.completed_task)
  wait('the message about the missing candidate', 10000, function() return #out.notifications > notes_before end)
  vim.wait(300) -- nothing else follows
  out.no_candidate_notifications = vim.list_slice(out.notifications, notes_before + 1)
  out.buffer_after_no_candidate = vim.api.nvim_buf_get_name(0)

  -- 3. the "Refactor add…" code action: a client-side command that asks for the instruction
  step('refactor (client command)')
  vim.ui.input = function(opts, on_confirm)
    out.input_prompt = opts.prompt
    on_confirm('Name the sum before returning it')
  end
  mark = #out.progress
  vim.api.nvim_win_set_cursor(0, { 5, 4 })
  vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title:match('^Refactor add') ~= nil end })
  out.review_refactor = review('a')
  wait('the refactoring to end', 60000, function() return ended('Refactor add', mark) end)
  out.refactor = progress_of('Refactor add', mark)
  out.calc_after_refactor = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  vim.cmd('silent wall')

  -- 4. :OhDocument! documents the function under the cursor: discarded in the review; then, with reviewEdits off,
  -- applied at once
  step('document')
  mark = #out.progress
  vim.api.nvim_win_set_cursor(0, { 5, 4 })
  vim.cmd('OhDocument!')
  out.review_document = review('q')
  wait('the discarded documentation task to end', 60000, function() return ended('Document add', mark) end)
  out.document_discarded = progress_of('Document add', mark)
  out.calc_after_discard = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  client.settings.ohLsp.reviewEdits = false
  client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  mark = #out.progress
  vim.api.nvim_win_set_cursor(0, { 5, 4 })
  vim.cmd('OhDocument!')
  wait('the documentation task to end', 60000, function() return ended('Document add', mark) end)
  out.review_shown_when_off = require('oh_lsp.review').showing() ~= nil
  out.document = progress_of('Document add', mark)
  out.calc_after_document = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  vim.cmd('silent wall')

  -- 5. :OhSelectModel: the list comes from ohLsp.listModels; the pick goes to ohLsp.setModel
  step('select model')
  vim.ui.select = function(items, opts, on_choice)
    out.select_prompt = opts.prompt
    out.select_items = vim.tbl_map(opts.format_item, items)
    for _, item in ipairs(items) do
      if item.name == 'fast-model' then
        return on_choice(item)
      end
    end
    on_choice(nil)
  end
  local notes = #out.notifications
  vim.cmd('OhSelectModel')
  wait('the model to be set', 10000, function()
    for i = notes + 1, #out.notifications do
      if out.notifications[i].msg:find('model: fast-model', 1, true) then return true end
    end
  end)

  -- 6. a slow streaming answer, cancelled with :OhCancel
  step('cancel')
  mark = #out.progress
  vim.cmd('OhGenerateTests')
  wait('tokens streaming, in the statusline', 30000, function()
    local line = require('oh_lsp').status()
    return line:find('1 running', 1, true) ~= nil and line:find(': streaming', 1, true) ~= nil
  end)
  out.running_before_cancel = vim.tbl_map(function(r) return r.title end, require('oh_lsp').running())
  out.statusline_streaming = require('oh_lsp').status()
  vim.cmd('OhCancel')
  wait('the cancelled progress to end', 20000, function() return ended('Generate tests for pkg/calc.py', mark) end)
  out.cancel = progress_of('Generate tests for pkg/calc.py', mark)
  wait('a status counting the cancel', 5000, function()
    local s = require('oh_lsp').status_data()
    return s and s.cancelled >= 1 and s.running == 0
  end)
  vim.cmd('OhCancel')
  out.cancel_with_nothing_running = out.notifications[#out.notifications].msg
  local done = client:request_sync('workspace/executeCommand',
    { command = 'ohLsp.listTasks', arguments = { { status = 'completed' } } }, 10000, buf).result
  notes = #out.notifications
  vim.cmd('OhCancel ' .. done[1].taskId)
  wait('the answer to ohLsp.cancelTask', 10000, function() return #out.notifications > notes end)
  out.cancel_by_id = { task_id = done[1].taskId, message = out.notifications[#out.notifications].msg }

  -- 7. a daily budget that is already spent: the statusline says so
  step('budget')
  client.settings.ohLsp.budgetPerDayUsd = 0.0001
  client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  wait('the budget marker', 10000, function()
    return require('oh_lsp').status():find('BUDGET HIT', 1, true) ~= nil
  end)
  out.statusline_budget = require('oh_lsp').status()
  out.status_budget = require('oh_lsp').status_data()
  local ok, rendered = pcall(vim.api.nvim_eval_statusline, vim.o.statusline, {})
  out.rendered_statusline = ok and rendered.str or ('error: ' .. tostring(rendered))

  -- :OhResult!'s details (formatting only: the ohLsp/taskEnded payload is written here, as a server would send it)
  out.details_lines = require('oh_lsp.outcome').lines({ taskId = 't', kind = 'unit_test', status = 'completed',
    target = 'pkg/calc.py', outputFile = 'tests/pkg/test_calc.py', score = 0.92, coverage = { before = 40, after = 95.4 },
    mutation = { before = vim.NIL, after = 62.5 }, cost = 0.0015, model = 'deepseek-chat', testsKept = { 'test_add', 'test_divide' },
    testsDropped = { { name = 'test_flaky', reason = 'flaky: failed 1 of 3 runs' } } })

  -- a breaker that is open (formatting only: the payload is written here, as a server would send it)
  local fake = vim.deepcopy(out.status_budget)
  fake.breakers = { { model = 'test-model', state = 'open' }, { model = 'fast-model', state = 'closed' } }
  fake.budgetLeftToday = vim.NIL
  out.text_breaker_open = require('oh_lsp.status').text(fake)

  -- 8. :OhMetrics
  step('metrics')
  vim.cmd('OhMetrics')
  wait('the metrics buffer', 10000, function() return lines('oh-lsp://metrics') ~= nil end)
  out.metrics = lines('oh-lsp://metrics')
  vim.cmd('close')

  -- 9. :help oh_lsp (helptags generated for a copy of doc/ in a temporary folder)
  step('help')
  local helpdir = env.OH_TEST_HELPDOC
  local tags_ok, tags_err = pcall(vim.cmd, 'helptags ' .. vim.fn.fnameescape(helpdir .. '/doc'))
  out.helptags_error = not tags_ok and tostring(tags_err) or vim.NIL
  vim.opt.rtp:append(helpdir)
  out.help = {}
  for _, tag in ipairs(vim.fn.json_decode(env.OH_TEST_HELP_TAGS)) do
    local found, err = pcall(vim.cmd, 'help ' .. tag)
    out.help[tag] = found and vim.fn.expand('%:t') or tostring(err)
    if found then vim.cmd('helpclose') end
  end

  step('stop')
  client:stop()
  wait('the server to exit', 10000, function() return client:is_stopped() end)
  out.statusline_after_stop = require('oh_lsp').status()
  step('done')
end

local ok, err = xpcall(run, debug.traceback)
if not ok then
  out.error = err
end
out.nvim = tostring(vim.version())
save_and_quit(ok and 0 or 1)
