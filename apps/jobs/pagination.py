"""Job lists page with `?limit=N&offset=M` (filters such as `?status=` still apply)."""

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination


class JobPagination(LimitOffsetPagination):
    def get_limit(self, request) -> int | None:
        self.default_limit = settings.API_PAGE_SIZE
        self.max_limit = settings.API_PAGE_MAX
        return super().get_limit(request)
