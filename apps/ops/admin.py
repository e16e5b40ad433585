"""The admin index gets a link to the operations dashboard (admin autodiscovers this)."""

from django.contrib import admin

admin.site.index_template = "ops/admin_index.html"
