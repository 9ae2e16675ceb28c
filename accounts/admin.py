"""Django admin for people: :class:`accounts.models.User`, who log in with an e-mail address.

Based on :class:`django.contrib.auth.admin.UserAdmin` (password hashing, the password-change view,
the "usable password" switch, no lookups on ``password``), adapted to a model with no username.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Q

from accounts.models import User
from config.admin import ReadOnlyInline
from projects.models import Membership


class UserCreationForm(auth_forms.AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")
        field_classes: dict = {}

    def clean_email(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["email"])


class UserChangeForm(auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes: dict = {}

    def clean_email(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["email"])


class MembershipInline(ReadOnlyInline):
    """The user's projects, read-only: roles change, and members come and go, through the
    Membership admin, whose writes go through ``projects.services`` (last-owner rule, invitations)."""

    model = Membership
    fk_name = "user"
    fields = ("project", "role", "status", "joined_at")
    readonly_fields = fields
    show_change_link = True
    verbose_name_plural = "Project memberships"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "usable_password", "password1", "password2")}),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "full_name", "project_count", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "date_joined", "groups")
    search_fields = ("email", "full_name")
    ordering = ("email",)
    inlines = (MembershipInline,)

    def get_queryset(self, request):
        active = Q(memberships__status=Membership.Status.ACTIVE)
        return super().get_queryset(request).annotate(project_count=Count("memberships", filter=active))

    @admin.display(description="Projects", ordering="project_count")
    def project_count(self, user: User) -> int:
        return user.project_count

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()
