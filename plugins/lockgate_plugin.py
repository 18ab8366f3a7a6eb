"""The Lockgate Airflow plugin: the Lockgate page in the Airflow UI.

Mounts :mod:`lockgate.ui.app` in the API server under ``/lockgate`` and adds it to the
UI twice: as "Lockgate" in the navigation (every source) and as a "Lockgate" tab on
each DAG's page (that source). Airflow shows external views in a frame of its own
page; the frame's requests carry the UI's session cookie, which the app's routes
check with Airflow's own authentication and authorisation.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from lockgate.ui.app import create_app

URL_PREFIX = "/lockgate"


class LockgatePlugin(AirflowPlugin):
    name = "lockgate"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Lockgate"}]
    external_views = [
        {
            "name": "Lockgate",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "lockgate",
            "nav_top_level": True,
        },
        {
            "name": "Lockgate",
            "href": f"{URL_PREFIX}/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "lockgate-dag",
        },
    ]
