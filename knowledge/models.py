"""Knowledge bases: collections of documents, cut into chunks that carry an embedding and a
full-text vector.

Every chunk, whatever its embedding model's dimension, lives in the one ``knowledge_chunk``
table with an untyped ``vector`` column. Each collection gets its own HNSW index, a partial
expression index (``(embedding::vector(N)) WHERE collection_id = …``) made by
``knowledge.index`` once the collection's dimension is known, so a search touches only its own
collection's graph.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from pgvector.django import VectorField

from agents.models import Provider
from projects.models import ProjectScopedModel

# pgvector's HNSW indexes take vectors of at most this many dimensions.
MAX_INDEXED_DIMENSIONS = 2000
# The text search configuration of chunks' full-text vectors (stemming, stop words).
TEXT_SEARCH_CONFIG = "english"


class SearchMode(models.TextChoices):
    VECTOR = "vector", "Vector (meaning)"
    KEYWORD = "keyword", "Keyword (full text)"
    HYBRID = "hybrid", "Hybrid (reciprocal rank fusion)"


class Collection(ProjectScopedModel):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    embedding_provider = models.ForeignKey(
        Provider,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="collections",
        help_text="Empty: the project's default provider, else the deployment's default (local on the embedded "
        "default).",
    )
    embedding_model = models.CharField(
        max_length=200, blank=True, help_text="Empty when created: the provider's default embedding model."
    )
    embedding_dimensions = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_INDEXED_DIMENSIONS)],
        help_text="Set from the model's first vectors unless given.",
    )
    # Bumped by a re-embedding: vectors made for an earlier version are not written.
    embedding_version = models.PositiveIntegerField(default=1, editable=False)
    chunk_size = models.PositiveIntegerField(
        default=200,
        validators=[MinValueValidator(16), MaxValueValidator(4000)],
        help_text="Tokens per chunk (estimated).",
    )
    chunk_overlap = models.PositiveIntegerField(
        default=40, validators=[MaxValueValidator(1000)], help_text="Tokens each chunk repeats from the one before."
    )
    default_top_k = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    default_mode = models.CharField(max_length=16, choices=SearchMode.choices, default=SearchMode.HYBRID)
    default_score_threshold = models.FloatField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint("project", "name", name="collection_unique_name"),
            models.CheckConstraint(condition=Q(chunk_overlap__lt=F("chunk_size")), name="collection_overlap_lt_size"),
        ]

    def __str__(self) -> str:
        return self.name


class Document(ProjectScopedModel):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded file"
        TEXT = "text", "Text"
        URL = "url", "URL"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PARSING = "parsing", "Parsing"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=8, choices=Source.choices)
    source_url = models.URLField(max_length=2000, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=120)
    size_bytes = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the content.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times ingestion started.")
    ready_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [models.UniqueConstraint("collection", "checksum", name="document_unique_checksum")]

    def __str__(self) -> str:
        return self.title


class DocumentContent(models.Model):
    """The bytes a document was made from, kept in the database beside it (written in the same
    transaction, readable by any worker) so that a failed document can be retried and a
    collection re-chunked."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, primary_key=True, related_name="content")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"content of {self.document_id}"


class Chunk(ProjectScopedModel):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    # No dimension here: each collection's index casts to its own (see knowledge.index).
    embedding = VectorField(null=True, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config=TEXT_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [models.UniqueConstraint("document", "ordinal", name="chunk_unique_ordinal")]
        indexes = [GinIndex(fields=["search_vector"], name="chunk_search_vector")]
