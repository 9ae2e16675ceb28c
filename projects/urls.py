from rest_framework.routers import SimpleRouter

from projects import views

router = SimpleRouter(trailing_slash="/?")
router.register("projects", views.ProjectViewSet, basename="project")
router.register("members", views.MemberViewSet, basename="member")
router.register("teams", views.TeamViewSet, basename="team")
router.register("api-keys", views.APIKeyViewSet, basename="apikey")

urlpatterns = router.urls
