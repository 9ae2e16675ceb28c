from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from agents.models import Agent, Provider, Tool, ToolBinding
        from agents.selectors import forget_on_write
        from knowledge.models import Collection

        # Cache coherence only (agents.selectors), not business logic: every write path,
        # admin and cascades included, must drop the project's cached routing.
        for model in (Agent, Provider, Tool, ToolBinding, Collection):
            post_save.connect(forget_on_write, sender=model, dispatch_uid=f"routing-{model.__name__}-save")
            post_delete.connect(forget_on_write, sender=model, dispatch_uid=f"routing-{model.__name__}-delete")
        m2m_changed.connect(forget_on_write, sender=Agent.collections.through, dispatch_uid="routing-agent-collections")
