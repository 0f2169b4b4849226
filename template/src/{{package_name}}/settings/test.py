"""Settings for the test suite.

Uses PostgreSQL and Redis when DATABASE_URL and REDIS_URL are set (as in
CI), and SQLite and an in-memory cache otherwise. Tasks run eagerly.
"""

from .base import *  # noqa: F403
from .base import env, finish, own_settings

# --- Security ----------------------------------------------------------------
DEBUG = False
SECRET_KEY = "test-only-secret-key-not-used-anywhere-else-0123456789"  # noqa: S105
ALLOWED_HOSTS = ["testserver", "localhost"]
# Fast hashing: the tests do not need slow password hashes.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The login throttle needs the request, which the test client's login() does
# not pass to authenticate(). A test of the throttle turns it on with
# override_settings(AXES_ENABLED=True).
AXES_ENABLED = False

# --- Database, cache and Celery broker ---------------------------------------
DATABASES = {
    "default": env.database(
        "DATABASE_URL",
        ["postgres", "postgresql", "pgsql"],
        default={"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    )
}

REDIS_URL = env.url("REDIS_URL", ["redis", "rediss"], default=None)
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

# --- Static and media files --------------------------------------------------
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Static files come from the apps' directories; nothing is collected.
WHITENOISE_AUTOREFRESH = True

# --- E-mail ------------------------------------------------------------------
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# --- Logging -----------------------------------------------------------------
# Lines for people to read (servicekit.logs).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")

# --- The service's own settings, then what derives from them ----------------
from . import project, project_test  # noqa: E402

globals().update(own_settings(project))
globals().update(own_settings(project_test))
finish(globals())
