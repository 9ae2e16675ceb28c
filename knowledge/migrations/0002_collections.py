import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.core.validators
import django.db.models.deletion
import pgvector.django.vector
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("agents", "0001_initial"),
        ("knowledge", "0001_vector_extension"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Document",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("title", models.CharField(max_length=300)),
                (
                    "source",
                    models.CharField(
                        choices=[("upload", "Uploaded file"), ("text", "Text"), ("url", "URL")], max_length=8
                    ),
                ),
                ("source_url", models.URLField(blank=True, max_length=2000)),
                ("filename", models.CharField(blank=True, max_length=255)),
                ("mime_type", models.CharField(max_length=120)),
                ("size_bytes", models.PositiveBigIntegerField(default=0)),
                ("checksum", models.CharField(help_text="SHA-256 of the content.", max_length=64)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("parsing", "Parsing"),
                            ("embedding", "Embedding"),
                            ("ready", "Ready"),
                            ("failed", "Failed"),
                        ],
                        db_index=True,
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("error_code", models.CharField(blank=True, max_length=64)),
                ("error_message", models.TextField(blank=True)),
                ("chunk_count", models.PositiveIntegerField(default=0)),
                ("chunks_embedded", models.PositiveIntegerField(default=0)),
                ("token_count", models.PositiveIntegerField(default=0)),
                ("attempts", models.PositiveIntegerField(default=0, help_text="How many times ingestion started.")),
                ("ready_at", models.DateTimeField(blank=True, null=True)),
                ("metadata", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "ordering": ["-created_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="Collection",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("name", models.CharField(max_length=120)),
                ("description", models.TextField(blank=True, max_length=2000)),
                (
                    "embedding_model",
                    models.CharField(
                        blank=True,
                        help_text="Empty when created: the provider's default embedding model.",
                        max_length=200,
                    ),
                ),
                (
                    "embedding_dimensions",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="Set from the model's first vectors unless given.",
                        null=True,
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(2000),
                        ],
                    ),
                ),
                ("embedding_version", models.PositiveIntegerField(default=1, editable=False)),
                (
                    "chunk_size",
                    models.PositiveIntegerField(
                        default=200,
                        help_text="Tokens per chunk (estimated).",
                        validators=[
                            django.core.validators.MinValueValidator(16),
                            django.core.validators.MaxValueValidator(4000),
                        ],
                    ),
                ),
                (
                    "chunk_overlap",
                    models.PositiveIntegerField(
                        default=40,
                        help_text="Tokens each chunk repeats from the one before.",
                        validators=[django.core.validators.MaxValueValidator(1000)],
                    ),
                ),
                (
                    "default_top_k",
                    models.PositiveSmallIntegerField(
                        default=5,
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(50),
                        ],
                    ),
                ),
                (
                    "default_mode",
                    models.CharField(
                        choices=[
                            ("vector", "Vector (meaning)"),
                            ("keyword", "Keyword (full text)"),
                            ("hybrid", "Hybrid (reciprocal rank fusion)"),
                        ],
                        default="hybrid",
                        max_length=16,
                    ),
                ),
                ("default_score_threshold", models.FloatField(blank=True, null=True)),
                ("metadata", models.JSONField(blank=True, default=dict)),
                (
                    "embedding_provider",
                    models.ForeignKey(
                        blank=True,
                        help_text="Empty: the project's default provider, else the deployment's default (local on the embedded default).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="collections",
                        to="agents.provider",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="projects.project",
                    ),
                ),
            ],
            options={
                "ordering": ["name", "id"],
            },
        ),
        migrations.CreateModel(
            name="DocumentContent",
            fields=[
                (
                    "document",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="content",
                        serialize=False,
                        to="knowledge.document",
                    ),
                ),
                ("data", models.BinaryField()),
            ],
        ),
        migrations.AddField(
            model_name="document",
            name="collection",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="documents", to="knowledge.collection"
            ),
        ),
        migrations.AddField(
            model_name="document",
            name="project",
            field=models.ForeignKey(
                editable=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="projects.project"
            ),
        ),
        migrations.CreateModel(
            name="Chunk",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("ordinal", models.PositiveIntegerField()),
                ("text", models.TextField()),
                ("token_count", models.PositiveIntegerField(default=0)),
                ("embedding", pgvector.django.vector.VectorField(blank=True, null=True)),
                (
                    "search_vector",
                    models.GeneratedField(
                        db_persist=True,
                        expression=django.contrib.postgres.search.SearchVector("text", config="english"),
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                ),
                ("metadata", models.JSONField(blank=True, default=dict)),
                (
                    "project",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="projects.project",
                    ),
                ),
                (
                    "collection",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="knowledge.collection"
                    ),
                ),
                (
                    "document",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="chunks", to="knowledge.document"
                    ),
                ),
            ],
            options={
                "ordering": ["document", "ordinal"],
            },
        ),
        migrations.AddConstraint(
            model_name="collection",
            constraint=models.UniqueConstraint(models.F("project"), models.F("name"), name="collection_unique_name"),
        ),
        migrations.AddConstraint(
            model_name="collection",
            constraint=models.CheckConstraint(
                condition=models.Q(("chunk_overlap__lt", models.F("chunk_size"))), name="collection_overlap_lt_size"
            ),
        ),
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(
                models.F("collection"), models.F("checksum"), name="document_unique_checksum"
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="chunk_search_vector"),
        ),
        migrations.AddConstraint(
            model_name="chunk",
            constraint=models.UniqueConstraint(models.F("document"), models.F("ordinal"), name="chunk_unique_ordinal"),
        ),
    ]
