from django.apps import AppConfig


class OcrConfig(AppConfig):
    name = "apps.ocr"
    verbose_name = "OCR engine"
