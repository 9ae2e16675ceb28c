from agents import views
from config.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("agents", views.AgentViewSet, basename="agent")
router.register("tools", views.ToolViewSet, basename="tool")
router.register("tool-bindings", views.ToolBindingViewSet, basename="toolbinding")

urlpatterns = router.urls
