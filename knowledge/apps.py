from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from knowledge.models import Collection
        from knowledge.services import index_drop_on_delete

        # Every way a collection goes (the API, the admin, a project's deletion) drops its index.
        post_delete.connect(index_drop_on_delete, sender=Collection, dispatch_uid="knowledge-index-drop")
