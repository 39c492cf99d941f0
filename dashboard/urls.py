from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy
from django.views.generic import RedirectView

from models_admin import oidc

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="models_admin:model_list"), name="home"),
    path(
        "accounts/login/",
        oidc.SignInView.as_view(),
        name="login",
    ),
    path("oidc/", include(oidc.urlpatterns)),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url=reverse_lazy("login")),
        name="password_reset_confirm",
    ),
    path("admin/", admin.site.urls),
    path("", include("models_admin.urls")),
]
