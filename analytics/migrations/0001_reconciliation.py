import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('budgets', '0006_alerts'),
        ('costswitch', '0002_inbound_webhook_attempts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ReconciliationRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('internal', 'Internal (cached aggregates against the ledger)'), ('external', 'External (provider export against the ledger)')], max_length=20)),
                ('source', models.CharField(help_text='`ledger`, or the provider of the export.', max_length=50)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='pending', max_length=20)),
                ('task_key', models.CharField(blank=True, help_text='The Celery task id (or command run) that owns the run.', max_length=200)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('lines_seen', models.PositiveIntegerField(default=0, help_text='Export lines or periods checked.')),
                ('lines_matched', models.PositiveIntegerField(default=0)),
                ('discrepancy_count', models.PositiveIntegerField(default=0)),
                ('adjusted_count', models.PositiveIntegerField(default=0)),
                ('ours_total', models.DecimalField(decimal_places=9, default=0, help_text='What the ledger says, over the lines checked.', max_digits=20)),
                ('theirs_total', models.DecimalField(decimal_places=9, default=0, help_text='What the provider (or the ledger rows) says.', max_digits=20)),
                ('adjusted_total', models.DecimalField(decimal_places=9, default=0, help_text='Sum of the compensating entries written.', max_digits=20)),
                ('error', models.TextField(blank=True)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reconciliation_runs', to='budgets.organization')),
            ],
            options={
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='Discrepancy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('missing_here', 'Missing here (the provider billed it, the ledger lacks it)'), ('missing_there', 'Missing there (the ledger has it, the provider does not)'), ('cost_differs', 'Cost differs'), ('drift', 'Cached aggregate drifted from the ledger')], max_length=20)),
                ('status', models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved')], default='open', max_length=20)),
                ('fingerprint', models.CharField(max_length=64)),
                ('external_key', models.CharField(blank=True, help_text='The provider line compared.', max_length=300)),
                ('request_id', models.CharField(blank=True, max_length=200)),
                ('model', models.CharField(blank=True, max_length=200)),
                ('window_start', models.DateTimeField(blank=True, null=True)),
                ('window_end', models.DateTimeField(blank=True, null=True)),
                ('ours', models.DecimalField(blank=True, decimal_places=9, max_digits=20, null=True)),
                ('theirs', models.DecimalField(blank=True, decimal_places=9, max_digits=20, null=True)),
                ('difference', models.DecimalField(decimal_places=9, default=0, help_text='theirs - ours.', max_digits=20)),
                ('details', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('resolution', models.CharField(blank=True, max_length=200)),
                ('adjustment', models.OneToOneField(blank=True, help_text='The compensating entry written for it, if any.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.usagerecord')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.organization')),
                ('period', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.budgetperiod')),
                ('usage', models.ForeignKey(blank=True, help_text='Our usage record, when the line matched exactly one.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.usagerecord')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='discrepancies', to='analytics.reconciliationrun')),
            ],
            options={
                'verbose_name_plural': 'discrepancies',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='SyncBatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(choices=[('openai', 'OpenAI'), ('anthropic', 'Anthropic'), ('other', 'Other (costswitch line format)')], max_length=20)),
                ('source', models.CharField(choices=[('webhook', 'Cost-data webhook'), ('upload', 'API upload'), ('file', 'File (manage.py import_usage)')], max_length=20)),
                ('format', models.CharField(help_text='The export shape that was recognized.', max_length=30)),
                ('filename', models.CharField(blank=True, max_length=255)),
                ('raw', models.TextField(blank=True, help_text='The export as received (webhooks: see the delivery).')),
                ('status', models.CharField(choices=[('received', 'Received'), ('processed', 'Processed'), ('failed', 'Failed')], default='received', max_length=20)),
                ('rows_seen', models.PositiveIntegerField(default=0)),
                ('rows_matched', models.PositiveIntegerField(default=0)),
                ('rows_imported', models.PositiveIntegerField(default=0, help_text='Lines the ledger lacked, now recorded as compensating entries.')),
                ('errors', models.JSONField(blank=True, default=list, help_text='Lines that could not be used, and why.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('processed_at', models.DateTimeField(blank=True, null=True)),
                ('inbound_webhook', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='sync_batch', to='costswitch.inboundwebhook')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.organization')),
                ('run', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='batch', to='analytics.reconciliationrun')),
            ],
            options={
                'verbose_name_plural': 'sync batches',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='ExternalAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(choices=[('openai', 'OpenAI'), ('anthropic', 'Anthropic'), ('other', 'Other (costswitch line format)')], max_length=20)),
                ('external_id', models.CharField(help_text='e.g. proj_abc, key_abc or wrkspc_abc.', max_length=200)),
                ('note', models.CharField(blank=True, max_length=200)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.organization')),
                ('team', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='budgets.team')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['organization_id', 'provider', 'external_id'],
                'constraints': [models.UniqueConstraint(fields=('organization', 'provider', 'external_id'), name='external_account_unique')],
            },
        ),
        migrations.AddIndex(
            model_name='reconciliationrun',
            index=models.Index(fields=['organization', 'created_at'], name='analytics_r_organiz_9a34d9_idx'),
        ),
        migrations.AddConstraint(
            model_name='reconciliationrun',
            constraint=models.UniqueConstraint(condition=models.Q(('task_key', ''), _negated=True), fields=('organization', 'task_key'), name='run_once_per_task'),
        ),
        migrations.AddIndex(
            model_name='discrepancy',
            index=models.Index(fields=['organization', 'status', 'kind'], name='analytics_d_organiz_503271_idx'),
        ),
        migrations.AddIndex(
            model_name='discrepancy',
            index=models.Index(fields=['organization', 'external_key'], name='analytics_d_organiz_7067f7_idx'),
        ),
        migrations.AddConstraint(
            model_name='discrepancy',
            constraint=models.UniqueConstraint(fields=('organization', 'fingerprint'), name='discrepancy_once'),
        ),
        migrations.AddIndex(
            model_name='syncbatch',
            index=models.Index(fields=['organization', 'created_at'], name='analytics_s_organiz_786978_idx'),
        ),
    ]
