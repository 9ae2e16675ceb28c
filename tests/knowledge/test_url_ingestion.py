"""Documents from a URL: fetched by the server from a loopback site (allowed here by the
setting that lets tools reach private networks), redirects followed and checked, and refused
when the address is private, the answer an error, or the body too large."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from knowledge import services
from knowledge.models import Document, DocumentContent
from tests.knowledge import documents as files

pytestmark = pytest.mark.django_db


class _Site(BaseHTTPRequestHandler):
    pages = {
        "/guide.md": (200, "text/markdown; charset=utf-8", files.MARKDOWN.encode()),
        "/manual.pdf": (200, "application/pdf", files.pdf_document(files.PDF_PAGES)),
        "/big.txt": (200, "text/plain", b"word " * 5000),
        "/fake.pdf": (200, "application/pdf", b"not a pdf at all"),
    }

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/guide.md")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, content_type, body = self.pages.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def collection(tenant):
    return services.collection_create(project=tenant.project, name="Web")


def add(tenant, collection, **body):
    return tenant.client().post(f"/api/v1/collections/{collection.pk}/documents/", body, format="json")


@pytest.fixture
def private_allowed(settings):
    settings.TOOLS_ALLOW_PRIVATE_NETWORKS = True


@pytest.mark.usefixtures("private_allowed")
@pytest.mark.parametrize(
    ("path", "mime_type", "filename"),
    [
        ("/guide.md", "text/markdown", "guide.md"),
        ("/manual.pdf", "application/pdf", "manual.pdf"),
        ("/moved", "text/markdown", "guide.md"),
    ],
)
def test_a_url_is_fetched_and_queued(tenant, collection, site, path, mime_type, filename):
    response = add(tenant, collection, url=site + path, metadata={"from": "web"})

    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["source"] == "url" and body["mime_type"] == mime_type and body["filename"] == filename
    assert body["source_url"] == f"{site}/{filename}" and body["title"] == filename
    document = Document.objects.get(pk=body["id"])
    assert services.document_parse(document.pk) == "parsed"  # what the worker runs next
    document.refresh_from_db()
    assert document.chunk_count > 0 and document.status == "embedding"


def test_a_loopback_url_is_refused_by_default(tenant, collection, site):
    response = add(tenant, collection, url=site + "/guide.md")

    assert response.status_code == 400 and response.json()["error"]["code"] == "target_not_allowed"
    assert not Document.objects.exists() and not DocumentContent.objects.exists()


@pytest.mark.usefixtures("private_allowed")
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/nowhere", 400, "fetch_failed"), ("/fake.pdf", 400, "type_mismatch"), ("/big.txt", 413, "payload_too_large")],
)
def test_bad_urls_are_clear_errors_and_nothing_is_written(tenant, collection, site, settings, path, status, code):
    settings.KNOWLEDGE_MAX_DOCUMENT_BYTES = 10_000
    response = add(tenant, collection, url=site + path)

    assert response.status_code == status and response.json()["error"]["code"] == code
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"url": "ftp://example.com/a.txt"}, {"url": "not a url"}, {"url": "https://example.com/a", "text": "both"}],
)
def test_bad_url_bodies_are_400(tenant, collection, body):
    response = add(tenant, collection, **body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_an_unreachable_host_is_a_clear_error(tenant, collection, private_allowed):
    response = add(tenant, collection, url="http://127.0.0.1:9/a.txt")  # discard port: refused
    assert response.status_code == 400 and response.json()["error"]["code"] == "fetch_failed"
