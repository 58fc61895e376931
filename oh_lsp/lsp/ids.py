"""The names editors rely on: command ids (the editor contract) and code-action kinds. Constants only, so that the
server can register its handlers without importing the features (they load after `initialized`)."""

GENERATE_TESTS = "ohLsp.generateTests"
DOCUMENT = "ohLsp.documentModule"
REFACTOR = "ohLsp.refactor"
REFACTOR_PROMPT = "ohLsp.refactorPrompt"  # client side: the editor asks for the instruction, then calls REFACTOR
OPEN_CANDIDATE = "ohLsp.openCandidate"  # client side: the editor opens a rejected candidate (CANDIDATE_REQUEST)
CANCEL_TASK = "ohLsp.cancelTask"
RETRY_TASK = "ohLsp.retryTask"
SHOW_METRICS = "ohLsp.showMetrics"
QUEUE_STATS = "ohLsp.queueStats"
LIST_TASKS = "ohLsp.listTasks"
SELECT_MODEL = "ohLsp.selectModel"
LIST_MODELS = "ohLsp.listModels"
SET_MODEL = "ohLsp.setModel"
SET_API_KEY = "ohLsp.setApiKey"
# the commands the server runs (ohLsp.refactorPrompt is the editors')
SERVER_COMMANDS = (
    GENERATE_TESTS,
    DOCUMENT,
    REFACTOR,
    CANCEL_TASK,
    RETRY_TASK,
    SHOW_METRICS,
    QUEUE_STATS,
    LIST_TASKS,
    SELECT_MODEL,
    LIST_MODELS,
    SET_MODEL,
    SET_API_KEY,
)

STATUS_NOTIFICATION = "ohLsp/status"
TASK_ENDED_NOTIFICATION = "ohLsp/taskEnded"  # a task this session started ended, just before its progress ends
CANDIDATE_REQUEST = "ohLsp/candidate"  # a failed task's rejected candidate: {taskId, attempt?, segment?} -> {uri, text}
SETTINGS_SECTION = "ohLsp"
DIAGNOSTIC_SOURCE = "oh-lsp"

# code-action kinds: editors group actions by their prefix (source, refactor, quickfix)
MODULE_TESTS = "source.ohLsp.generateTests"
MODULE_DOCS = "source.ohLsp.document"
SYMBOL_TESTS = "refactor.ohLsp.generateTests"
SYMBOL_DOCS = "refactor.ohLsp.document"
SYMBOL_REFACTOR = "refactor.rewrite.ohLsp"
QUICKFIX = "quickfix"
ACTION_KINDS = ("source", "refactor", "quickfix")
