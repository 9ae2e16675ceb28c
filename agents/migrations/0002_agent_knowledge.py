import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0001_initial"),
        ("knowledge", "0002_collections"),
    ]

    operations = [
        migrations.AddField(
            model_name="agent",
            name="auto_retrieval",
            field=models.BooleanField(
                default=True,
                help_text="Search the agent's collections with each user message and put the best chunks in the prompt.",
            ),
        ),
        migrations.AddField(
            model_name="agent",
            name="collections",
            field=models.ManyToManyField(
                blank=True,
                help_text="Knowledge the agent answers from: searched before each answer (``auto_retrieval``) and through the built-in ``knowledge_search`` tool.",
                related_name="agents",
                to="knowledge.collection",
            ),
        ),
        migrations.AddField(
            model_name="agent",
            name="retrieval_top_k",
            field=models.PositiveSmallIntegerField(
                default=4,
                help_text="Chunks put in the prompt.",
                validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(20)],
            ),
        ),
    ]
