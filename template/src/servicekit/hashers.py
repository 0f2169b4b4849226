"""Password hashing whose memory per login is bounded."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class BoundedArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id at OWASP's recommended minimum cost (19 MiB, two passes, one
    lane) instead of Django's 100 MiB.

    Every login attempt hashes a password, right or wrong, and for a user
    that does not exist too. At Django's cost, ten attempts at once take a
    gigabyte in the web container, and guesses spread over many usernames
    (the login throttle counts per username and address) would push it past
    its memory limit. At this cost they take under 200 MB. Hashes made with
    other parameters still verify, and are made again at the next login.
    """

    memory_cost = 19 * 1024
    parallelism = 1
