from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from django.contrib import admin

        # The admin index gets a link to the operations dashboard.
        admin.site.index_template = "ops/admin_index.html"
