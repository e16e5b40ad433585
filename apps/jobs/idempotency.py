"""The `Idempotency-Key` header of a submit (POST /api/jobs, POST /vN/ocr/jobs).

1-128 visible ASCII characters. A repeat of a key the same user already sent answers
200 with the job the first submit made instead of making another (services.job_submit;
a unique (owner, idempotency_key) constraint settles concurrent repeats), so a client
may safely retry a submit whose answer it did not get. Another user's equal key is
another key. Anything else in the header is a 400.
"""

import re

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from apps.jobs.models import IDEMPOTENCY_KEY_MAX

HEADER = "Idempotency-Key"
KEY_RE = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}")
DESCRIPTION = (
    f"1-{IDEMPOTENCY_KEY_MAX} visible ASCII characters. A repeated key of the same user "
    "answers 200 with the job the first submit made (no new job)."
)
PARAMETER = OpenApiParameter(
    HEADER, str, location=OpenApiParameter.HEADER, required=False, description=DESCRIPTION
)


def idempotency_key(request) -> str | None:
    """The request's key, None without one; a malformed key is a 400."""
    key = request.headers.get(HEADER)
    if key is not None and not KEY_RE.fullmatch(key):
        raise serializers.ValidationError({HEADER: DESCRIPTION})
    return key
