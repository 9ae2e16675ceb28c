from rest_framework.routers import SimpleRouter

from agents import views

router = SimpleRouter(trailing_slash="/?")
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("agents", views.AgentViewSet, basename="agent")
router.register("tools", views.ToolViewSet, basename="tool")
router.register("tool-bindings", views.ToolBindingViewSet, basename="toolbinding")

urlpatterns = router.urls
