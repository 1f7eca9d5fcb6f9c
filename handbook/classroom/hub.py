"""The classroom's JupyterHub pieces (imported by ``deploy/classroom/jupyterhub_config.py``).

- :class:`RosterAuthenticator`: a login name and the password :mod:`handbook.classroom`
  generated for it, checked against the scrypt hashes in ``<state>/hub/passwords.json``; the
  hub reads no password in clear (the instructor's copy is ``<state>/passwords.csv``).
- :class:`StudentSpawner`: JupyterHub's LocalProcessSpawner, except that hub user ``alice``
  runs as the Unix user ``jupyter-alice`` (as The Littlest JupyterHub does), and that the
  student edition is handed out into ``~/course`` before each start, as the student.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import sys
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode

from handbook import classroom


class RosterAuthenticator(Authenticator):
    """Password logins for the roster: each name's scrypt hash in :attr:`password_file`."""

    password_file = Unicode(
        help="JSON: login -> hash (handbook.classroom.hash_password)", config=True
    )

    def hashes(self) -> dict[str, str]:
        """Read on every login (a small file), so the hub keeps no copy of its own."""
        return json.loads(Path(self.password_file).read_text(encoding="utf-8"))

    async def authenticate(self, handler, data) -> str | None:
        name = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        stored = self.hashes().get(name)
        matched = await asyncio.to_thread(classroom.check_password, password, stored)
        if not matched:
            self.log.warning("failed login for %r", name)
            return None
        return name


class StudentSpawner(LocalProcessSpawner):
    """Each hub user's server as the Unix user ``<prefix><name>``, in its home."""

    unix_prefix = Unicode(classroom.DEFAULT_PREFIX, config=True, help="Unix user names' prefix")
    edition = Unicode(config=True, help="the student edition handed out into ~/course")
    python = Unicode(sys.executable, config=True, help="the students' Python")

    @property
    def unix_name(self) -> str:
        return classroom.unix_name(self.user.name, self.unix_prefix)

    def make_preexec_fn(self, name):
        return set_user_setuid(self.unix_name)

    def user_env(self, env):
        user = pwd.getpwnam(self.unix_name)
        env.update(USER=self.unix_name, HOME=user.pw_dir, SHELL=user.pw_shell or "/bin/bash")
        # the chapters' executed copies and claim records go to the student's home
        env["HANDBOOK_BUILD_DIR"] = f"{user.pw_dir}/.handbook/build"
        env["HANDBOOK_LEDGER_DIR"] = f"{user.pw_dir}/.handbook/ledger"
        return env

    async def start(self):
        if self.edition:  # what the student lacks of the edition, copied as the student
            await asyncio.to_thread(
                classroom.hand_out, self.unix_name, Path(self.edition), python=self.python
            )
        return await super().start()
