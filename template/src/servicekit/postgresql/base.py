from django.db.backends.postgresql import base

from ..metrics import time_query


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Django's documented hook around every statement: no cursor class
        # of its own, so nothing is created per cursor or per request.
        self.execute_wrappers.append(time_query)
