"""The tamper-evident audit log: a leaf any app may call (DESIGN.md section 1).

Not built yet (issue 5): `record` is the interface other modules call.
"""

from typing import Any


def record(
    *,
    action: str,
    obj: Any,
    actor: Any = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    organization: Any = None,
) -> Any:
    """Append one entry for a change to `obj` (or a decision about it) by `actor` (a user, an API key,
    or None for the system)."""
    return None
