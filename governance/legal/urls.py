from django.urls import path

from governance.legal import views

app_name = "legal"

urlpatterns = [
    path("", views.transparency, name="transparency"),
]
