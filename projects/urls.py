from config.routers import OptionalSlashRouter
from projects import views

router = OptionalSlashRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("members", views.MemberViewSet, basename="member")
router.register("teams", views.TeamViewSet, basename="team")
router.register("api-keys", views.APIKeyViewSet, basename="apikey")

urlpatterns = router.urls
