"""URLconf of the OCR servers (DJANGO_ROOT_URLCONF, set by apps/ops/launch.py): only
`POST /ocr/predict`. The API (ocrproject/urls.py) does not mount it."""

from django.urls import include, path

urlpatterns = [path("", include("apps.ocr.urls"))]
