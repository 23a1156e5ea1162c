from django.urls import path

from governance.sso import views

app_name = "sso"

urlpatterns = [
    path("", views.sso_start, name="start"),
    path("callback/", views.sso_callback, name="callback"),
    path("settings/", views.sso_settings, name="settings"),
    path("login/<slug:slug>/", views.sso_begin, name="begin"),
]
