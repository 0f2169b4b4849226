from django.db.backends.postgresql import base

from ..metrics import time_query


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # For the connection's whole life, what Django's documented
        # connection.execute_wrapper() does for a block: every statement goes
        # through time_query. No cursor class of its own, so nothing is
        # created per cursor or per request.
        self.execute_wrappers.append(time_query)
