"""Notifications to budget owners: in-app, email and signed outbound webhooks.

Not built yet (issue 5): `notify` is the interface other modules call.
"""

from typing import Any


def notify(*, event: str, budget: Any, subject: str, body: str, data: dict | None = None) -> Any:
    """Tell the recipients of `budget` about `event` on the channels they chose."""
    return None
