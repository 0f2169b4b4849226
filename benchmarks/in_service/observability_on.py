"""The service's production settings as rendered, observability and all, with
the URLs of observability_urls (the service's own plus a one-query view).

    DJANGO_SETTINGS_MODULE=observability_on BENCH_PACKAGE=<package>
"""

import importlib
import os

_production = importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.settings.production")
globals().update({name: value for name, value in vars(_production).items() if name.isupper()})

ROOT_URLCONF = "observability_urls"
