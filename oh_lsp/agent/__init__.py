"""The OpenHands agent runtime (``OH_LSP_RUNTIME=openhands``): an OpenHands SDK agent, run as a subprocess on its own
Python >= 3.12 environment, does a task's work on a sandboxed copy; our own checks decide. See docs/openhands.md."""
