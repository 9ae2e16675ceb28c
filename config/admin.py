"""Admin conventions shared by every app's admin module."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from django.contrib import admin
from django.core.exceptions import ValidationError


class ReadOnlyInline(admin.TabularInline):
    """Rows shown for context only; each links to its own admin, where writes go through services."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the platform writes (conversations, runs, the ledger): viewed here, never added or edited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def reject_duplicate_rows(forms: Iterable, key: Callable[[dict], object], message: str) -> None:
    """Refuse an inline formset whose kept rows share ``key`` (what a unique constraint would)."""
    kept = Counter(
        key(form.cleaned_data)
        for form in forms
        if getattr(form, "cleaned_data", None) and not form.cleaned_data.get("DELETE")
    )
    if any(count > 1 for value, count in kept.items() if value is not None):
        raise ValidationError(message)
