import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from ocrproject.bodylimit import BodyLimitASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
application = BodyLimitASGI(get_asgi_application(), max_bytes=settings.REQUEST_MAX_BYTES)
