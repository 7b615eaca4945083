"""Processing profiles: named lists of variants, from one JSON document validated at cold start."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from chalicelib.errors import ConfigError
from chalicelib.imaging.specs import VariantSpec, parse_variant_list

SHIPPED_PROFILES = Path(__file__).resolve().parent.parent / "profiles.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    variants: tuple[VariantSpec, ...]


@dataclass(frozen=True)
class ProfileSet:
    default: str
    profiles: dict[str, Profile]

    @property
    def names(self) -> list[str]:
        return sorted(self.profiles)

    def get(self, name: str | None) -> Profile | None:
        return self.profiles.get(name or self.default)

    def with_default_variants(self, variants: tuple[VariantSpec, ...]) -> ProfileSet:
        """The same set with the default profile's variants replaced (the VARIANTS override)."""
        default = self.profiles[self.default]
        replaced = Profile(default.name, default.description, variants)
        return ProfileSet(self.default, {**self.profiles, self.default: replaced})


def parse_profiles(text: str, where: str = "PROFILES", default: str | None = None) -> ProfileSet:
    """Validate the whole document: `{"default": name, "profiles": {name: {"description", "variants"}}}`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or set(raw) - {"default", "profiles"}:
        raise ConfigError(f'{where}: must be an object with "default" and "profiles"')
    entries = raw.get("profiles")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{where}.profiles: must be a non-empty object of profiles by name")
    profiles: dict[str, Profile] = {}
    for name, body in entries.items():
        here = f"{where}.profiles.{name}"
        if not _NAME.match(name):
            raise ConfigError(f"{here}: profile names are 1-64 lowercase letters, digits, - or _")
        if not isinstance(body, dict) or set(body) - {"description", "variants"}:
            raise ConfigError(f'{here}: must be an object with "description" and "variants"')
        description = body.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{here}.description: must be a string")
        profiles[name] = Profile(name, description, parse_variant_list(body.get("variants"), f"{here}.variants"))
    chosen = default or raw.get("default", "default")
    if chosen not in profiles:
        raise ConfigError(f"{where}.default: {chosen!r} is not one of the profiles {sorted(profiles)}")
    return ProfileSet(chosen, profiles)


def load_profiles(env_text: str | None, default: str | None) -> ProfileSet:
    """PROFILES from the environment if set, else the document shipped beside the code."""
    if env_text:
        return parse_profiles(env_text, "PROFILES", default)
    return parse_profiles(SHIPPED_PROFILES.read_text(), SHIPPED_PROFILES.name, default)
