from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from agents import chat_urls
from config import exceptions, health

api_v1 = [
    path("auth/", include("accounts.urls")),
    path("", include("projects.urls")),
    path("", include("agents.urls")),
    path("", include(chat_urls.api_urlpatterns)),
    path("", include("agents.run_urls")),
    path("", include("knowledge.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include(api_v1)),
    # OpenAI-compatible API: point an OpenAI SDK's base_url at http(s)://<host>/v1
    path("v1/", include(chat_urls.openai_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
    # Anything else is an API-style 404, also under DEBUG (which would render an HTML page).
    # csrf_exempt: a POST to an unknown URL is a 404 too, not CSRF middleware's HTML 403.
    re_path(r"^(?!admin/).*$", csrf_exempt(exceptions.handler404)),
]

handler400 = "config.exceptions.handler400"
handler403 = "config.exceptions.handler403"
handler404 = "config.exceptions.handler404"
handler500 = "config.exceptions.handler500"
