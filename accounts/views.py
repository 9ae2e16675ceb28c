"""Staff authentication: register, log in (JWT pair), refresh with rotation, log out, profile."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import serializers as s
from accounts.services import user_change_password, user_register, user_update


def _token_pair(user) -> dict:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


class _PublicAuthView(generics.GenericAPIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    def get_authenticate_header(self, request) -> str:
        # Without authenticators DRF would turn a failed login's 401 into a 403.
        return 'Bearer realm="api"'


class RegisterView(_PublicAuthView):
    serializer_class = s.RegisterSerializer

    @extend_schema(responses={201: s.RegisterResponseSerializer}, tags=["auth"])
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data)
        body = {"user": s.UserSerializer(user).data, **_token_pair(user)}
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(_PublicAuthView):
    serializer_class = s.LoginSerializer

    @extend_schema(responses={200: s.TokenPairSerializer}, tags=["auth"])
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            raise AuthenticationFailed("E-mail or password is wrong.", code="invalid_credentials")
        update_last_login(None, user)
        return Response(_token_pair(user))


class RefreshView(_PublicAuthView):
    serializer_class = s.RefreshSerializer

    @extend_schema(responses={200: s.TokenPairSerializer}, tags=["auth"])
    def post(self, request):
        """Trade a refresh token for a new pair; the old refresh token is blacklisted."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refresh = TokenRefreshSerializer(data=serializer.validated_data)
        try:
            refresh.is_valid(raise_exception=True)
        except TokenError as exc:
            raise AuthenticationFailed(str(exc), code="token_not_valid") from None
        return Response(refresh.validated_data)


class _AccountView(generics.GenericAPIView):
    """The caller's own account: people only (JWT); an API key is not a user."""

    authentication_classes = [JWTAuthentication]
    permission_classes = [permissions.IsAuthenticated]


class LogoutView(_AccountView):
    serializer_class = s.RefreshSerializer

    @extend_schema(responses={204: None}, tags=["auth"])
    def post(self, request):
        """Blacklist the given refresh token; the short-lived access token expires on its own."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
        except TokenError as exc:
            raise AuthenticationFailed(str(exc), code="token_not_valid") from None
        if str(token.get("user_id")) != str(request.user.pk):
            raise AuthenticationFailed("This refresh token belongs to another user.", code="token_not_valid")
        token.blacklist()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(_AccountView):
    serializer_class = s.UserSerializer

    def get_object(self):
        return self.request.user

    @extend_schema(tags=["auth"])
    def get(self, request):
        return Response(s.UserSerializer(request.user).data)

    @extend_schema(request=s.UserUpdateSerializer, tags=["auth"])
    def patch(self, request):
        serializer = s.UserUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = user_update(user=request.user, **serializer.validated_data)
        return Response(s.UserSerializer(user).data)


class PasswordChangeView(_AccountView):
    serializer_class = s.PasswordChangeSerializer

    @extend_schema(responses={204: None}, tags=["auth"])
    def post(self, request):
        """Change the password; every refresh token of the user is revoked."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_change_password(user=request.user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
