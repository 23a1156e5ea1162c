from django.urls import path

from governance.trust import views

app_name = "trust"

urlpatterns = [
    path("", views.trust_page, name="public"),
]
