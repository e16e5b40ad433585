import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from ocrproject.bodylimit import BodyLimitWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
application = BodyLimitWSGI(get_wsgi_application(), max_bytes=settings.REQUEST_MAX_BYTES)
