from django.apps import AppConfig


class VisitorsConfig(AppConfig):
    name = "visitors"
    default_auto_field = "django.db.models.BigAutoField"
