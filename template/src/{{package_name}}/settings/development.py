"""Development settings: run with no services at all.

Without DATABASE_URL the database is SQLite; without REDIS_URL the cache is
in memory and Celery runs tasks in the calling process. Set either variable
(see .env.example) to use the real server instead.
"""

import sys

from .base import *  # noqa: F403
from .base import BASE_DIR, env, finish, own_settings

# --- Security ----------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-development-only-never-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Database, cache and Celery broker ---------------------------------------
fallbacks = []

DATABASES = {"default": env.database("DATABASE_URL", ["postgres", "postgresql", "pgsql", "sqlite"], default=None)}
if DATABASES["default"] is None:
    DATABASES["default"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR.parent / "db.sqlite3"}
    fallbacks.append("SQLite database")

REDIS_URL = env.url("REDIS_URL", ["redis", "rediss"], default=None)
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = CELERY_RESULT_BACKEND = REDIS_URL
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
    fallbacks.append("in-memory cache, tasks run eagerly")

# --- E-mail ------------------------------------------------------------------
# Every message is written to a file in .mail/ (ignored by Git), where it
# stays readable after runserver's output has scrolled away: `make mail`
# shows them.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = BASE_DIR.parent / ".mail"

# Said once: runserver's autoreloader imports settings again in its child
# process, which it marks with RUN_MAIN.
if fallbacks and not env.bool("RUN_MAIN", default=False):
    print(f"Development settings without services: {', '.join(fallbacks)}.", file=sys.stderr)

# --- Logging -----------------------------------------------------------------
# Lines for people to read (servicekit.logs).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")

# --- The service's own settings, then what derives from them ----------------
from . import project, project_development  # noqa: E402

globals().update(own_settings(project))
globals().update(own_settings(project_development))
finish(globals())
