"""The API's router: every route answers with or without its trailing slash.

DRF's ``SimpleRouter(trailing_slash=...)`` only knows "a slash" or "none" (any true value
becomes ``/``), so ``/api/v1/agents/<id>`` would be a 404 while ``/api/v1/agents/<id>/`` works.
"""

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
