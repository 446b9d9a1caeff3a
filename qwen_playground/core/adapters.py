"""Fine-tuned LoRA adapters on disk: their card, where they live, and listing them into the registry.

Each adapter is a folder (peft's adapter files plus `card.json`) under
`<cache_dir>/adapters/` (what the Fine-tune tab saves) or under a folder named
in `settings.adapter_dirs`. An adapter whose base model is in the registry is
offered as '<base>+<name>' right after its base, in every route that offers
the base.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from .registry import Registry

CARD = "card.json"
log = logging.getLogger(__name__)


class Card(BaseModel):
    """What an adapter is: its base, its data, how it was trained and how it ended."""

    model_config = ConfigDict(extra="ignore")

    name: str
    base: str
    data_fingerprint: str = ""  # sha256 of the training examples, first 16 hex digits
    examples: int = 0
    settings: dict = {}
    steps: int = 0
    final_loss: float | None = None
    seconds: float | None = None
    created: str = ""

    @property
    def description(self) -> str:
        loss = f", final loss {self.final_loss:.3f}" if self.final_loss is not None else ""
        return f"{self.base} fine-tuned with LoRA '{self.name}' on {self.examples} examples ({self.steps} steps{loss})"


def adapter_dirs(cache_dir: Path, extra: list[Path]) -> list[Path]:
    return [Path(cache_dir).expanduser() / "adapters", *(Path(p).expanduser() for p in extra)]


def read_card(folder: Path) -> Card | None:
    try:
        return Card.model_validate_json((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as e:
        log.warning("skipping adapter %s: %s", folder, str(e).splitlines()[0])
        return None


def register(registry: Registry, folder: Path) -> str | None:
    """Offer the adapter in `folder`; its model id, or None when its card is unreadable or its base unknown here."""
    card = read_card(folder)
    if card is None or card.base not in registry.models:
        return None
    spec = registry.models[card.base].with_adapter(card.name, str(folder), card.description)
    registry.add_beside(spec)
    return spec.id


def register_all(registry: Registry, folders: list[Path]) -> list[str]:
    """Every adapter found in `folders` (each adapter one sub-folder with a card), registered; their model ids."""
    found = []
    for parent in folders:
        for folder in sorted(parent.iterdir()) if parent.is_dir() else []:
            if (folder / CARD).is_file() and (model_id := register(registry, folder)):
                found.append(model_id)
    return found
