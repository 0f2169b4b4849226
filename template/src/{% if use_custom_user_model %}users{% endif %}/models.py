"""The service's user model (AUTH_USER_MODEL), in place of django.contrib.auth's User.

Django cannot switch to another user model once migrations are applied, so
the service has its own from its first migration: a field added here later
is an ordinary migration. It is Django's user (username, names, e-mail
address, staff and superuser flags, groups and permissions) whose e-mail
address, when given, belongs to one user whatever its case: ready for
logging in by e-mail.
"""

from typing import ClassVar

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.db.models.functions import Lower


class UserManager(DjangoUserManager):
    def get_by_email(self, email):
        """The user with this e-mail address, in any case; raises User.DoesNotExist."""
        return self.get(email__iexact=email)


class User(AbstractUser):
    objects: ClassVar[UserManager] = UserManager()

    # AbstractUser's Meta gives the model its names ("user", "users"); the
    # type stubs do not declare it.
    class Meta(AbstractUser.Meta):  # type: ignore[name-defined]
        constraints = [
            # Users without an address are allowed: createsuperuser and
            # create_user() do not require one.
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="users_user_email_unique",
                violation_error_message="A user with this e-mail address already exists.",
            ),
        ]
