"""The service's URLs plus one view that makes one database query, for the
observability figures (both sides of the comparison route through it).

BENCH_PACKAGE names the service's Django project package.
"""

import importlib
import os

from django.contrib.contenttypes.models import ContentType
from django.http import JsonResponse
from django.urls import path

ONE_QUERY_PATH = "bench/one-query/"


def one_query(request):
    """One ORM query (a few rows of django_content_type), answered as JSON."""
    models = list(ContentType.objects.filter(app_label="auth").order_by("model").values_list("model", flat=True))
    return JsonResponse({"models": models})


urlpatterns = [
    *importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.urls").urlpatterns,
    path(ONE_QUERY_PATH, one_query),
]
