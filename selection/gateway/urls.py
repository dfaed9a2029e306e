from django.urls import path

from selection.gateway import views

app_name = "gateway"

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("models", views.ModelListView.as_view(), name="models"),
    path(
        "costswitch/conversations/<str:conversation_id>",
        views.ConversationCostView.as_view(),
        name="conversation-cost",
    ),
]
