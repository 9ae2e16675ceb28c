from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector, for the embeddings of knowledge chunks (CREATE EXTENSION IF NOT EXISTS vector)."""

    initial = True
    dependencies: list = []
    operations = [VectorExtension()]
