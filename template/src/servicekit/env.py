"""django-environ's Env, strict: a value that cannot be parsed stops start-up
with an error naming the variable, instead of a bare ValueError, and a
boolean must say true or false (DEBUG=maybe is not silently false)."""

import environ
from django.core.exceptions import ImproperlyConfigured

FALSE_STRINGS = ("false", "off", "no", "n", "0", "")


class Env(environ.Env):
    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as error:
            raise ImproperlyConfigured(f"{var} has an invalid value: {error}") from None

    @classmethod
    def parse_value(cls, value, cast):
        if cast is bool and isinstance(value, str):
            text = value.strip().lower()
            if text not in cls.BOOLEAN_TRUE_STRINGS and text not in FALSE_STRINGS:
                raise ValueError(f"{value!r} is neither true nor false")
        return super().parse_value(value, cast)
