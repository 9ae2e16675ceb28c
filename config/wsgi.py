import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Model-call endpoints are async and stream Server-Sent Events; under WSGI a stream is read to
# the end and sent in one piece. Serve the API with ASGI (config.asgi) in production.
application = get_wsgi_application()
