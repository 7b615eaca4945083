"""One JSON log line per thing that happens to an image: the outcome and its id, then details."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("imgpress.pipeline")


def outcome(name: str, image_id: str | None, **fields: Any) -> None:
    log.info(json.dumps({"outcome": name, "id": image_id, **fields}, default=str))
