"""Signals the budgets app sends to the apps that build on it (budgets imports none of them).

`alert_raised(sender=Alert, alert=<Alert>)` is sent once per alert, after the transaction that
inserted it has committed (never for an alert that was rolled back). approvals connects to it in
`ApprovalsConfig.ready()` and turns the alert into notifications.
"""

from django.dispatch import Signal

alert_raised = Signal()
