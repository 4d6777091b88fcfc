"""The web console: server-rendered pages over the same repositories and figures as the REST
API, a customer share page, and ``/docs`` with Swagger UI served from the installed package.

Everything a page loads comes from this process (a Content-Security-Policy of ``'self'``
says so to the browser); the charts are SVG drawn on the server, and no page runs a script.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from services.api.console import docs, pages, share, writes
from services.api.console.rendering import STATIC, page
from services.api.console.session import ConsoleRefusal, SignInNeeded


def install(app: FastAPI) -> None:
    """Add the console, the share page, local API docs and their static files to ``app``
    (built with ``docs_url=None``: ``/docs`` is served here)."""
    app.include_router(pages.router)
    app.include_router(writes.router)
    app.include_router(share.router)
    app.include_router(docs.router)
    app.mount("/console/static", STATIC, name="console-static")
    app.add_exception_handler(ConsoleRefusal, _refused)
    app.add_exception_handler(SignInNeeded, _sign_in)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefusal)
    return page(
        request,
        "error.html",
        {"status": exc.status, "message": exc.message, "viewer": None},
        status_code=exc.status,
    )


async def _sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/login", status_code=303)
