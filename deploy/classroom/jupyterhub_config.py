"""JupyterHub's configuration for ``make classroom`` (one machine, 127.0.0.1).

Read by ``jupyterhub -f`` as ``python -m handbook.classroom start`` runs it; everything that
changes per class (roster, instructor, ports, the classroom's folder) comes from
``$HANDBOOK_CLASSROOM_STATE/settings.json``, which that command wrote. See
:mod:`handbook.classroom` and book/classroom.md.
"""

import os
from pathlib import Path

from handbook.classroom import Settings
from handbook.classroom.hub import RosterAuthenticator, StudentSpawner

c = get_config()  # noqa: F821 (JupyterHub defines it)
settings = Settings.load(Path(os.environ["HANDBOOK_CLASSROOM_STATE"]))
state = settings.folder

# The class on 127.0.0.1 only (put a TLS proxy in front of it to open it to a network).
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings.port
c.JupyterHub.hub_ip = "127.0.0.1"
if settings.hub_port:
    c.JupyterHub.hub_port = settings.hub_port
c.JupyterHub.db_url = f"sqlite:///{state / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "hub" / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "hub" / "jupyterhub.pid")
c.ConfigurableHTTPProxy.command = [settings.proxy]
c.ConfigurableHTTPProxy.pid_file = str(state / "hub" / "proxy.pid")
if settings.proxy_api_port:
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"

# Real logins: the roster's generated passwords (hashes only); the instructor is the admin.
c.JupyterHub.authenticator_class = RosterAuthenticator
c.RosterAuthenticator.password_file = str(state / "hub" / "passwords.json")
c.Authenticator.allowed_users = set(settings.names)
c.Authenticator.admin_users = {settings.instructor}

# Each server as its own Unix user, with the student edition, the book's kernel and
# jupyterlab-myst (installed in this environment, where the servers' Python comes from).
c.JupyterHub.spawner_class = StudentSpawner
c.StudentSpawner.unix_prefix = settings.prefix
c.StudentSpawner.edition = str(state / "student")
c.StudentSpawner.python = settings.python
c.Spawner.cmd = [settings.python, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab/tree/course"
c.Spawner.args = ["--LabApp.expose_app_in_browser=True"]  # the browser test drives the editor
c.Spawner.environment = {
    "JUPYTER_PATH": str(state / "kernel" / "share" / "jupyter"),
    "PATH": f"{Path(settings.python).parent}:/usr/local/bin:/usr/bin:/bin",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}
c.Spawner.start_timeout = 180  # a busy machine starts JupyterLab slowly
c.Spawner.http_timeout = 180
c.JupyterHub.cleanup_servers = True  # stopping the hub stops the students' servers
