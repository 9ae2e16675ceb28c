"""OpenAPI generation: our conventions, stated once for every operation.

* Every operation documents the error envelope for the 4xx codes it can produce.
* Operations of project-scoped views document the ``X-Project-ID`` header.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. `not_found`, `validation_error`.")
    message = serializers.CharField(help_text="For people.")
    details = serializers.DictField(
        help_text="Field errors for validation failures (`{field: [messages]}`), else `{}`."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
    request_id = serializers.CharField(allow_null=True, help_text="Echoes or generates `X-Request-ID`.")


_ERROR = OpenApiResponse(ErrorSerializer, description="Error envelope")


class AutoSchema(openapi.AutoSchema):
    def get_override_parameters(self):
        params = list(super().get_override_parameters())
        from projects.tenancy import PROJECT_HEADER, ProjectScopedViewSet

        if isinstance(self.view, ProjectScopedViewSet):
            params.append(
                OpenApiParameter(
                    PROJECT_HEADER,
                    OpenApiTypes.UUID,
                    OpenApiParameter.HEADER,
                    required=False,
                    description="The project to act in. Required with a JWT; implied by an API key.",
                )
            )
        return params

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = (
            ["400", "404", "405", "409", "413", "415", "429"] if self.method != "GET" else ["400", "404", "405", "429"]
        )
        if self.get_auth():
            codes += ["401", "403"]
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(_ERROR, code, direction=direction)
        return responses
