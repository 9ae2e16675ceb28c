from __future__ import annotations

import io

from django.conf import settings
from rest_framework import parsers

from config.exceptions import PayloadTooLarge


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser reads the stream without a bound; this one stops at
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and answers 413, with or without a Content-Length."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if stream is not None and limit is not None:
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            stream = io.BytesIO(body)
        return super().parse(stream, media_type, parser_context)
