#!/usr/bin/env bash
# Builds the platform-specific .vsix: oh-lsp and its Python packages for every supported CPython version
# (scripts/bundle_python.py), the bundled extension, then `vsce package --target`.
#
#   scripts/package.sh [target]    target: linux-x64 (default: this machine's), linux-arm64, darwin-x64,
#                                  darwin-arm64, win32-x64, win32-arm64
# Writes oh-lsp-<target>.vsix, and oh-lsp.vsix (a copy) for this machine's target.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(node -p "process.platform + '-' + process.arch")"
target="${1:-$here}"
python3 scripts/bundle_python.py --target "$target"
npx vsce package --no-dependencies --target "$target" --out "oh-lsp-$target.vsix"
if [ "$target" = "$here" ]; then
  cp "oh-lsp-$target.vsix" oh-lsp.vsix
fi
ls -l "oh-lsp-$target.vsix" >&2
