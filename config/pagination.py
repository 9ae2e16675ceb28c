from __future__ import annotations

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` and ``?page_size=`` (1..200); the body is ``count, next, previous, results``."""

    page_size_query_param = "page_size"
    max_page_size = 200


class CursorPagination(pagination.CursorPagination):
    """For append-only streams (messages, usage records): stable under concurrent inserts."""

    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"
