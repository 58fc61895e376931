"""A bare pygls 2 server that only answers `initialize` (the start-up baseline of bench/lsp_startup.py)."""

from pygls.lsp.server import LanguageServer

server = LanguageServer("bare", "0")

if __name__ == "__main__":
    server.start_io()
