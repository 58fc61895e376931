"""The language server (`oh-lsp serve`): code actions and commands that submit tasks to an in-process engine per
workspace folder, work-done progress, edits delivered as `workspace/applyEdit`, diagnostics and a status readout.

`server.py` only translates LSP messages; each feature lives in its own module and is built from plain functions.
"""
