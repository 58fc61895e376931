-- The user commands (:OhGenerateTests, :OhDocument, :OhRefactor, :OhCancel, :OhMetrics, :OhSelectModel, and
-- :OhCandidate, :OhResult from their modules) and the client side of `ohLsp.refactorPrompt`.
local client_of = require('oh_lsp.client')
local progress = require('oh_lsp.progress')

local M = {}
local notify = client_of.notify

-- The target of a command in the current buffer: the file, a dotted symbol (`Class.method`), or with `here`
-- the function or class under the cursor.
local function target(client, bufnr, symbol, here)
  local args = { uri = vim.uri_from_bufnr(bufnr) }
  if here then
    args.symbol = vim.lsp.util.make_position_params(0, client.offset_encoding).position
  elseif symbol and symbol ~= '' then
    args.symbol = symbol
  end
  return args
end

-- Start a task with `command` (its result is `{taskId, progressToken}`).
function M.start(client, command, args, bufnr)
  client_of.execute(client, command, args, function(result)
    if type(result) == 'table' and result.taskId then
      progress.remember(client.id, result.progressToken, result.taskId)
      if result.duplicate then
        notify('the same task is already queued (' .. result.taskId:sub(1, 8) .. ')')
      end
    end
  end, bufnr)
end

local function task_command(command)
  return function(opts)
    local bufnr = vim.api.nvim_get_current_buf()
    local client = client_of.need(bufnr)
    if client then
      M.start(client, command, target(client, bufnr, vim.trim(opts.args), opts.bang), bufnr)
    end
  end
end

-- ohLsp.refactorPrompt {uri, symbol}: ask for the instruction, then run ohLsp.refactor.
-- Called by Neovim for the server's "Refactor <name>…" code action (`command`, `ctx`), and by :OhRefactor.
function M.refactor_prompt(command, ctx)
  local args = (command.arguments or {})[1]
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if type(args) ~= 'table' or not args.uri or not args.symbol or not client then
    notify('ohLsp.refactorPrompt needs {uri, symbol}', vim.log.levels.ERROR)
    return
  end
  local name = type(args.symbol) == 'string' and args.symbol or 'the symbol under the cursor'
  vim.ui.input({ prompt = 'Refactor ' .. name .. ' (what to do): ' }, function(instruction)
    if instruction == nil or vim.trim(instruction) == '' then
      return -- the user cancelled
    end
    M.start(client, 'ohLsp.refactor', { uri = args.uri, symbol = args.symbol, instruction = instruction }, ctx.bufnr)
  end)
end

local function refactor(opts)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_of.need(bufnr)
  if client then
    local args = target(client, bufnr, vim.trim(opts.args), vim.trim(opts.args) == '')
    M.refactor_prompt({ arguments = { args } }, { client_id = client.id, bufnr = bufnr })
  end
end

-- :OhCancel cancels the running oh-lsp task (window/workDoneProgress/cancel for its progress token); with several,
-- it asks which one; :OhCancel! cancels them all; :OhCancel {taskId} cancels that task (ohLsp.cancelTask).
local function cancel(opts)
  local task_id = vim.trim(opts.args)
  if task_id ~= '' then
    local client = client_of.need(0, true)
    if client then
      client_of.execute(client, 'ohLsp.cancelTask', { taskId = task_id }, function(result)
        notify(result and result.cancelled and ('cancelled ' .. task_id) or ('task ' .. task_id .. ' was not running'))
      end)
    end
    return
  end
  local running = progress.running()
  if #running == 0 then
    notify('no oh-lsp task is running')
  elseif #running == 1 or opts.bang then
    progress.cancel(running)
  else
    vim.ui.select(running, {
      prompt = 'Cancel which oh-lsp task?',
      format_item = function(item)
        return item.title .. (item.message and (': ' .. item.message) or '')
      end,
    }, function(choice)
      if choice then
        progress.cancel({ choice })
      end
    end)
  end
end

local function metrics()
  local client = client_of.need(0, true)
  if client then
    client_of.execute(client, 'ohLsp.showMetrics', nil, function(summary)
      require('oh_lsp.metrics').show(summary)
    end)
  end
end

local function price(value)
  return value and string.format('$%g', value * 1e6) or '?'
end

-- :OhSelectModel: pick from ohLsp.listModels, then ohLsp.setModel (or give the choice back to the selector).
local function select_model()
  local client = client_of.need(0, true)
  if not client then
    return
  end
  client_of.execute(client, 'ohLsp.listModels', nil, function(models)
    local items = { { automatic = true } }
    vim.list_extend(items, models or {})
    vim.ui.select(items, {
      prompt = 'oh-lsp model',
      format_item = function(m)
        if m.automatic then
          return 'automatic (oh-lsp chooses per task)'
        end
        local quality = m.qualityScore ~= nil and m.qualityScore ~= vim.NIL
          and string.format('quality %.1f/5', m.qualityScore) or 'quality unknown'
        local prices = (m.pricePrompt ~= nil and m.pricePrompt ~= vim.NIL)
          and (price(m.pricePrompt) .. '/' .. price(m.priceCompletion) .. ' per M tokens') or 'price unknown'
        return string.format('%s  (%s, %s, %s)', m.name, quality, prices, m.state or '?')
      end,
    }, function(choice)
      if not choice then
        return
      end
      local name = choice.automatic and vim.NIL or choice.name
      client_of.execute(client, 'ohLsp.setModel', { name = name }, function(result)
        notify('model: ' .. (choice.automatic and ('automatic (now ' .. tostring(result and result.model) .. ')')
          or tostring(result and result.model)))
      end)
    end)
  end)
end

-- Create the user commands (idempotent).
function M.create()
  local create = vim.api.nvim_create_user_command
  create('OhGenerateTests', task_command('ohLsp.generateTests'), { nargs = '?', bang = true,
    desc = 'oh-lsp: generate tests for this file, for {symbol}, or (with !) for the function under the cursor' })
  create('OhDocument', task_command('ohLsp.documentModule'), { nargs = '?', bang = true,
    desc = 'oh-lsp: document this file, {symbol}, or (with !) the function under the cursor' })
  create('OhRefactor', refactor, { nargs = '?',
    desc = 'oh-lsp: refactor {symbol} (default: under the cursor); asks what to do' })
  create('OhCancel', cancel, { nargs = '?', bang = true,
    desc = 'oh-lsp: cancel the running task (! all of them, or the task {taskId})' })
  create('OhMetrics', metrics, { nargs = 0, desc = 'oh-lsp: show the metrics' })
  create('OhSelectModel', select_model, { nargs = 0, desc = 'oh-lsp: choose the model for new tasks' })
  require('oh_lsp.candidate').create()
  require('oh_lsp.outcome').create()
end

return M
