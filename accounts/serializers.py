from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from accounts.models import User
from config.serializers import StrictModelSerializer, StrictSerializer


class UserSerializer(StrictModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "date_joined"]
        read_only_fields = ["id", "email", "date_joined"]


class UserUpdateSerializer(StrictSerializer):
    full_name = serializers.CharField(max_length=150, allow_blank=True)


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Register",
            value={"email": "ada@example.com", "password": "correct horse battery", "full_name": "Ada"},
            request_only=True,
        )
    ]
)
class RegisterSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    full_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    invitation_token = serializers.CharField(
        required=False, max_length=128, help_text="The token from an invitation e-mail; joins its project."
    )


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)


class RegisterResponseSerializer(serializers.Serializer):
    user = UserSerializer(read_only=True)
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Log in", value={"email": "ada@example.com", "password": "correct horse battery"}, request_only=True
        )
    ]
)
class LoginSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class RefreshSerializer(StrictSerializer):
    refresh = serializers.CharField(max_length=2048)


class PasswordChangeSerializer(StrictSerializer):
    old_password = serializers.CharField(write_only=True, max_length=128)
    new_password = serializers.CharField(write_only=True, max_length=128)
