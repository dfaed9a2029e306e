from approvals.api import audit, notifications, overrides

urlpatterns = [*audit.urlpatterns, *overrides.urlpatterns, *notifications.urlpatterns]
