"""An ASGI app that builds the plugin's FastAPI app on its first request.

Airflow loads every plugin wherever it needs one plugin's parts: the ``airflow dags test`` command,
the DAG processor and every task process look up operator extra links through the plugin manager.
Building the views' FastAPI app at plugin discovery imported FastAPI, Airflow's core API security
and the views' modules into every such process (1.5-1.9 s of ``airflow dags test``'s start-up);
only the API server ever serves the app, so it is built there, once, on the first request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LazyASGIApp:
    """An ASGI app that builds the app ``factory`` returns on its first call and hands every call to it.

    :param factory: builds the real ASGI app (called at most once)
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        """The real app, built on first use."""
        if self._app is None:
            # The API server may run several requests at once; one of them builds the app.
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
