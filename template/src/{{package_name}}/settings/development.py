"""Development settings: run with no services at all.

Without DATABASE_URL the database is SQLite; without REDIS_URL the cache is
in memory and Celery runs tasks in the calling process. Set either variable
(see .env.example) to use the real server instead.
"""

import os
import sys

from .base import *  # noqa: F403
from .base import BASE_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-development-only-never-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

fallbacks = []

if "DATABASE_URL" in os.environ:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR.parent / "db.sqlite3"}}
    fallbacks.append("SQLite database")

if "REDIS_URL" in os.environ:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env("REDIS_URL")}}
    CELERY_BROKER_URL = CELERY_RESULT_BACKEND = env("REDIS_URL")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
    fallbacks.append("in-memory cache, tasks run eagerly")

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# Said once: runserver's autoreloader imports settings again in its child
# process, which it marks with RUN_MAIN.
if fallbacks and os.environ.get("RUN_MAIN") != "true":
    print(f"Development settings without services: {', '.join(fallbacks)}.", file=sys.stderr)
