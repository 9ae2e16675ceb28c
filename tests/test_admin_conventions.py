"""config.admin: the shared admin pieces."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from config.admin import reject_duplicate_rows


def rows(*cleaned):
    return [SimpleNamespace(cleaned_data=data) for data in cleaned]


def by_name(row):
    return row["name"].lower() if row.get("name") else None


def test_rows_sharing_a_key_are_refused():
    with pytest.raises(ValidationError, match="Two teams"):
        reject_duplicate_rows(rows({"name": "Support"}, {"name": "support"}), by_name, "Two teams cannot share a name.")


def test_deleted_empty_and_invalid_rows_do_not_count():
    forms = rows({"name": "Support"}, {"name": "support", "DELETE": True}, {}, {"name": ""})
    forms.append(SimpleNamespace())  # an invalid form has no cleaned_data

    reject_duplicate_rows(forms, by_name, "never raised")
