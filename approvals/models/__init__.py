"""Models of the approvals app, one module per concern."""

from approvals.models.audit import *  # noqa: F403
from approvals.models.notifications import *  # noqa: F403
from approvals.models.overrides import *  # noqa: F403
