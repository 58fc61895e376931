"""Print the table of docs/sandbox.md: what each sandbox layer blocks, measured on this machine.

    uv run python scripts/sandbox_table.py

Each layer runs a probe (oh_lsp/sandbox/measure.py) that tries each thing; "n/a" marks a layer this machine cannot
make (bubblewrap not installed, no Landlock, no user namespaces).
"""

from __future__ import annotations

import asyncio
import platform

from oh_lsp.sandbox.measure import measure_all, table
from oh_lsp.validation.sandbox import probe_kernel


def main() -> None:
    results = asyncio.run(measure_all())
    kernel = probe_kernel()
    print(f"Measured on Linux {platform.release()}, Landlock ABI {kernel['landlock']}.\n")
    print(table(results))
    for column, got in results.items():
        if isinstance(got, str):
            print(f"\n{column}: not available here: {got}")


if __name__ == "__main__":
    main()
