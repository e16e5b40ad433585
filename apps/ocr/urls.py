from django.urls import path

from apps.ocr.views import PredictView

urlpatterns = [path("ocr/predict", PredictView.as_view(), name="ocr-predict")]
