"""What the destination of a copy already holds.

Some defaults must differ between a new service and one that exists: a
choice that an existing service's database has already made (its user
model) must not be changed by an update that asks the question for the
first time.
"""

from pathlib import Path

from jinja2 import pass_context
from jinja2.ext import Extension


@pass_context
def existing_service(context):
    """Whether the destination already holds a service: the answers file of an
    earlier copy (an update, a recopy) or a Django project's manage.py (a
    service adopting the template)."""
    conf = context.get("_copier_conf")
    if conf is None:
        return False
    destination = Path(conf["dst_path"])
    return any((destination / name).is_file() for name in (str(conf["answers_file"]), "manage.py", "src/manage.py"))


class Destination(Extension):
    """Registers existing_service() with copier's Jinja environment."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["existing_service"] = existing_service
