"""The OpenAPI schema (any valid token, or signed-in staff) and the browsable docs (staff only)."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import JSONRenderer

from governance.api.auth import ApiTokenAuthentication
from governance.api.models import ApiToken
from governance.api.problems import problem_response


def _verified_staff(user) -> bool:
    is_verified = getattr(user, "is_verified", None)
    return bool(
        user and user.is_authenticated and user.is_active and user.is_staff and callable(is_verified) and is_verified()
    )


class TokenOrVerifiedStaff(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiToken) or _verified_staff(request.user)


class SchemaView(SpectacularAPIView):
    """JSON by default (YAML with ?format=yaml); refusals are problem+json like the rest of the API."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [TokenOrVerifiedStaff]
    renderer_classes = [OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer, OpenApiYamlRenderer2]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(response, "exception", False):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
        return response


class StaffOnlyDocs(SpectacularSwaggerSplitView):
    """Swagger UI for staff: anonymous visitors go to the admin sign-in, anyone else signed
    in without being verified staff gets a 403 problem."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if not _verified_staff(request.user):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
            return problem_response(
                403, "The API documentation is for staff signed in with their second factor.", code="permission_denied"
            )
        return super().get(request, *args, **kwargs)
