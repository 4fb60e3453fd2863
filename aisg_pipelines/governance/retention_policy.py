"""Retention policies: the periods per category (config/retention.yaml), validated on load.

Light on purpose (no LanceDB, no pyarrow): reports and access read the periods from here, and
`governance/retention.py` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CATEGORIES: tuple[str, ...] = ("user_content", "system_logs", "metrics", "audit_ledger", "retired_embed_versions")
# Categories a policy file may give (validated the same way) but need not: their owners apply
# them (access_exports: governance/access.py deletes GDPR access exports past it; default 30 days).
OPTIONAL_CATEGORIES: tuple[str, ...] = ("access_exports",)
OPTIONAL_DEFAULT_DAYS: dict[str, int] = {"access_exports": 30}  # the period of an optional category the file does not give
DEFAULT_POLICY_FILE = Path(__file__).resolve().parent.parent / "config" / "retention.yaml"
POLICY_KEYS = {"days", "basis", "description"}

class PolicyError(ValueError):
    """The retention policy file is invalid; the message says what to fix."""


@dataclass(frozen=True)
class Policy:
    category: str
    days: int
    basis: str = ""
    description: str = ""

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)


@dataclass(frozen=True)
class RetentionPolicies:
    policies: dict[str, Policy]
    source: str = ""
    optional: dict[str, Policy] = field(default_factory=dict)  # OPTIONAL_CATEGORIES the file gives

    def __getitem__(self, category: str) -> Policy:
        return self.policies[category]

    def cutoff(self, category: str, now: datetime) -> datetime:
        return now - self.policies[category].period

    def days(self) -> dict[str, int]:
        """Days per category: every known category, and each optional one (its default when the file has none)."""
        return {**OPTIONAL_DEFAULT_DAYS, **{c: p.days for c, p in self.policies.items()}, **{c: p.days for c, p in self.optional.items()}}


def parse_policies(data: Any, source: str = "<policy>") -> RetentionPolicies:
    if not isinstance(data, dict) or not isinstance(data.get("policies"), dict):
        raise PolicyError(f"{source}: expected a mapping with a `policies:` mapping of category -> {{days: N}}")
    raw = data["policies"]
    unknown = sorted(str(k) for k in raw if k not in CATEGORIES and k not in OPTIONAL_CATEGORIES)
    if unknown:
        raise PolicyError(f"{source}: unknown retention category {', '.join(map(repr, unknown))}; known categories are "
                          f"{', '.join(CATEGORIES + OPTIONAL_CATEGORIES)}")
    missing = [c for c in CATEGORIES if c not in raw]
    if missing:
        raise PolicyError(f"{source}: no policy for known category {', '.join(map(repr, missing))}; every category needs `days: N` (N > 0)")
    out = {}
    for cat in CATEGORIES + tuple(c for c in OPTIONAL_CATEGORIES if c in raw):
        spec = raw[cat]
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"days": spec}
        if not isinstance(spec, dict) or "days" not in spec:
            raise PolicyError(f"{source}: policy {cat!r} must be a mapping with `days: N` (N > 0)")
        extra = sorted(set(spec) - POLICY_KEYS)
        if extra:
            raise PolicyError(f"{source}: policy {cat!r} has unknown keys {extra}; allowed: {sorted(POLICY_KEYS)}")
        days = spec["days"]
        if isinstance(days, bool) or not isinstance(days, int):
            raise PolicyError(f"{source}: policy {cat!r}: days must be a whole number of days, got {days!r}")
        if days <= 0:
            raise PolicyError(f"{source}: policy {cat!r}: days must be positive, got {days} (a zero or negative period would delete everything)")
        out[cat] = Policy(cat, days, str(spec.get("basis", "")), str(spec.get("description", "")))
    return RetentionPolicies({c: out[c] for c in CATEGORIES}, source, {c: p for c, p in out.items() if c not in CATEGORIES})


def load_policies(path: str | Path | None = None) -> RetentionPolicies:
    import yaml

    p = Path(path) if path else DEFAULT_POLICY_FILE
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"retention policy file {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{p}: not valid YAML: {exc}") from None
    return parse_policies(data, str(p))
