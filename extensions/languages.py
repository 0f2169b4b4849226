"""The language question's check: Django must know the language.

Copier runs without Django installed, so the codes of Django's LANGUAGES
(django.conf.global_settings, Django 5.2) are listed here; the template's
tests compare them with the rendered service's Django.
"""

from jinja2.ext import Extension

DJANGO_LANGUAGES = [
    "af",
    "ar",
    "ar-dz",
    "ast",
    "az",
    "bg",
    "be",
    "bn",
    "br",
    "bs",
    "ca",
    "ckb",
    "cs",
    "cy",
    "da",
    "de",
    "dsb",
    "el",
    "en",
    "en-au",
    "en-gb",
    "eo",
    "es",
    "es-ar",
    "es-co",
    "es-mx",
    "es-ni",
    "es-ve",
    "et",
    "eu",
    "fa",
    "fi",
    "fr",
    "fy",
    "ga",
    "gd",
    "gl",
    "he",
    "hi",
    "hr",
    "hsb",
    "hu",
    "hy",
    "ia",
    "id",
    "ig",
    "io",
    "is",
    "it",
    "ja",
    "ka",
    "kab",
    "kk",
    "km",
    "kn",
    "ko",
    "ky",
    "lb",
    "lt",
    "lv",
    "mk",
    "ml",
    "mn",
    "mr",
    "ms",
    "my",
    "nb",
    "ne",
    "nl",
    "nn",
    "os",
    "pa",
    "pl",
    "pt",
    "pt-br",
    "ro",
    "ru",
    "sk",
    "sl",
    "sq",
    "sr",
    "sr-latn",
    "sv",
    "sw",
    "ta",
    "te",
    "tg",
    "th",
    "tk",
    "tr",
    "tt",
    "udm",
    "ug",
    "uk",
    "ur",
    "uz",
    "vi",
    "zh-hans",
    "zh-hant",
]


def language_error(value: object) -> str:
    """Empty when Django has the language, else what to answer instead."""
    code = str(value).strip()
    if code in DJANGO_LANGUAGES:
        return ""
    close = [known for known in DJANGO_LANGUAGES if known.split("-")[0] == code.lower().replace("_", "-").split("-")[0]]
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return (
        f"language must be a language code that Django knows, in lower case (en, en-gb, de, pt-br, zh-hans); "
        f"got {code!r}.{hint}"
    )


class Languages(Extension):
    """Registers language_error with copier's Jinja environment."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["language_error"] = language_error
