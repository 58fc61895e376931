"""The session's settings as they stand: what the editor gave (`initializationOptions`, then each
`workspace/didChangeConfiguration`) plus the run-time overrides (`ohLsp.setModel`, `ohLsp.setApiKey`, held in memory
only). Every change is checked as a whole for every folder before it is taken; a refused one leaves the old settings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t

from oh_lsp.lsp import editor
from oh_lsp.lsp import settings as cfg
from oh_lsp.lsp.errors import CommandError

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.config import OpenHandsConfig

log = logging.getLogger(__name__)


class Configuration:
    def __init__(self, ls: LanguageServer) -> None:
        self.ls = ls
        self.settings: dict[str, Any] = {}
        self.overrides = cfg.Overrides()
        self.early_problems: list[str] = []  # found before the user could be shown them
        self.early_warnings: list[str] = []

    def initialize(self, options: Any) -> None:
        """Read `initializationOptions` (cheap: nothing heavy is imported here)."""
        section = cfg.section_of(options)
        if section:
            section, notes = cfg.screen(section)
            self.early_warnings += notes
            try:
                self.settings, unknown = cfg.merge_settings({}, section)
            except cfg.SettingsError as exc:
                self.early_problems.append(str(exc))
            else:
                if unknown:
                    log.info("ignoring unknown settings: %s", ", ".join(unknown))

    @property
    def workers(self) -> int:
        return cfg.workers(self.settings)

    @property
    def review_edits(self) -> bool:
        return cfg.review_edits(self.settings)

    def secrets(self) -> list[str]:
        return [s for s in (self.overrides.api_key, self.settings.get("apiKey")) if s]

    def build(self, root: Path) -> OpenHandsConfig:
        return cfg.build_config(root, self.settings, self.overrides)

    def for_folder(self, root: Path) -> OpenHandsConfig:
        """The configuration of a new folder; with the defaults (and a message) when the settings do not fit it.
        What the folder's `.env` may not set is shown as a warning."""
        try:
            config = self.build(root)
        except cfg.SettingsError as exc:
            if not self.settings:
                raise
            editor.show(self.ls, f"{exc} Running {root.name} with the default settings.", t.MessageType.Error)
            config = cfg.build_config(root, {}, self.overrides)
        for note in config.project_notes:
            editor.show(self.ls, f"oh-lsp: {note}", t.MessageType.Warning)
        return config

    def change(self, raw: Any, roots: list[Path]) -> dict[Path, OpenHandsConfig] | None:
        """Take new settings from the editor: each folder's new configuration, or None (and a message) when they
        are refused or there is nothing usable in `raw`."""
        section = cfg.section_of(raw)
        if section is None:
            return None
        section, notes = cfg.screen(section)
        for note in notes:
            editor.show(self.ls, f"oh-lsp: {note}", t.MessageType.Warning)
        try:
            settings, _unknown = cfg.merge_settings(self.settings, section)
            configs = {root: cfg.build_config(root, settings, self.overrides) for root in roots}
        except cfg.SettingsError as exc:
            editor.show(self.ls, str(exc), t.MessageType.Error)
            return None
        self.settings = settings
        return configs

    def override(self, roots: list[Path], **changes: Any) -> dict[Path, OpenHandsConfig]:
        """Change the run-time overrides: each folder's new configuration; raises `CommandError` (and keeps the old
        overrides) when a folder's configuration refuses them."""
        previous = cfg.Overrides(self.overrides.api_key, self.overrides.model)
        for name, value in changes.items():
            setattr(self.overrides, name, value)
        try:
            return {root: self.build(root) for root in roots}
        except cfg.SettingsError as exc:
            self.overrides = previous
            raise CommandError(str(exc)) from None
