"""The Lockgate page's web app, mounted in Airflow's API server by the plugin.

Routes (under the plugin's prefix, ``/lockgate``):

* ``GET /`` — every source the user may read, freshness and rows per run;
* ``GET /dags/{dag_id}`` — one source: per table its checkpoint, runs, failed rules,
  lake versions, schema history and last error;
* ``GET /api/dags/{dag_id}`` — the same as JSON;
* ``GET /dags/{dag_id}/docs?table=&run_id=&version=`` — a run's GX Data Docs page,
  found from the lake by run id (never by a path from the request), with its CDN
  assets replaced by the vendored copies;
* ``GET /static/{name}`` — those vendored assets, looked up by name in a fixed index.

Every route needs Airflow's authentication (a bearer token or the UI's session
cookie) and the matching authorisation: reading a source's DAG runs for its pages,
seeing plugin views for the static assets. Plugin routes are not protected by Airflow on
their own; the dependencies below do it.
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from lockgate.config import SourceConfig, load_sources
from lockgate.settings import load_settings

DAG_READ = "GET"


def _requires_dag_read():
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag(DAG_READ, DagAccessEntity.RUN))


def _requires_plugin_view():
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return Depends(requires_access_view(AccessView.PLUGINS))


def _user_dep():
    from airflow.api_fastapi.core_api.security import get_user

    return Depends(get_user)


def _not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} not found")


def _source_of(dag_id: str) -> SourceConfig:
    for config in load_sources(load_settings().sources_dir).values():
        if config.dag_id == dag_id:
            return config
    raise _not_found(f"Lockgate DAG '{dag_id}'")


def _may_read(user, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(
        method=DAG_READ, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )


def _prefix(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def create_app() -> FastAPI:
    app = FastAPI(title="Lockgate", docs_url=None, redoc_url=None, openapi_url=None)
    _add_pages(app)
    _add_docs(app)
    _add_static(app)
    return app


def _add_pages(app: FastAPI) -> None:
    from lockgate.ui import pages
    from lockgate.ui.status import source_status

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, user=_user_dep()) -> HTMLResponse:  # noqa: B008 - FastAPI dependency
        settings = load_settings()
        configs = list(load_sources(settings.sources_dir).values())
        readable = [c for c in configs if _may_read(user, c.dag_id)]
        if configs and not readable:
            raise HTTPException(status_code=403, detail="no access to any Lockgate DAG")
        sources = [source_status(settings, c) for c in readable]
        return HTMLResponse(pages.overview(_prefix(request), sources))

    @app.get("/dags/{dag_id}", response_class=HTMLResponse, dependencies=[_requires_dag_read()])
    def source_page(dag_id: str, request: Request) -> HTMLResponse:
        status = source_status(load_settings(), _source_of(dag_id))
        return HTMLResponse(pages.source_page(_prefix(request), status))

    @app.get("/api/dags/{dag_id}", dependencies=[_requires_dag_read()])
    def source_json(dag_id: str) -> JSONResponse:
        status = source_status(load_settings(), _source_of(dag_id))
        return JSONResponse(json.loads(json.dumps(asdict(status), default=_json_value)))


def _json_value(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _add_docs(app: FastAPI) -> None:
    from lockgate.ui.docs import data_docs_page

    @app.get("/dags/{dag_id}/docs", response_class=HTMLResponse, dependencies=[_requires_dag_read()])
    def data_docs(
        dag_id: str,
        request: Request,
        table: Annotated[str, Query(max_length=200)],
        run_id: Annotated[str, Query(max_length=500)],
        version: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> HTMLResponse:
        config = _source_of(dag_id)
        if table not in {t.name for t in config.tables}:
            raise _not_found(f"table '{table}' of {dag_id}")
        html = data_docs_page(load_settings(), config.source, table, run_id, version, _prefix(request) + "/static")
        if html is None:
            raise _not_found(f"a Data Docs page for run '{run_id}' (version {version}) of {config.source}.{table}")
        return HTMLResponse(html)


#: Names of the files ``/static/{name}`` serves: built once from fixed folders.
_STATIC_NAME = re.compile(r"^[A-Za-z0-9@._/-]{1,300}$")


def _add_static(app: FastAPI) -> None:
    from lockgate.ui.docs import static_index

    @app.get("/static/{name:path}", dependencies=[_requires_plugin_view()])
    def static(name: str) -> Response:
        path = static_index().get(name) if _STATIC_NAME.match(name) else None
        if path is None:
            raise _not_found(f"static file '{name}'")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(Path(path).read_bytes(), media_type=kind, headers={"Cache-Control": "max-age=86400"})
