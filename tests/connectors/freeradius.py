"""A real FreeRADIUS (Debian's freeradius) on 127.0.0.1, authorizing from an SQLite
database created with FreeRADIUS's own schema.sql, and radclient to ask it.

`make test` installs the Debian packages freeradius and freeradius-utils.
"""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RADDB = Path("/etc/freeradius/3.0")
SCHEMA = RADDB / "mods-config/sql/main/sqlite/schema.sql"
SECRET = "opennsps-test-secret"
START_TIMEOUT = 20.0

CONFIG = """
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {workdir}
sbindir = /usr/sbin
logdir = {workdir}
raddbdir = {workdir}
radacctdir = {workdir}
name = freeradius
confdir = {workdir}
modconfdir = {raddb}/mods-config
run_dir = {workdir}
db_dir = {workdir}
libdir = /usr/lib/freeradius
pidfile = {workdir}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
  auth = yes
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}}
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 4
  max_requests_per_server = 0
}}
client localhost {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
modules {{
  expr {{
  }}
  pap {{
  }}
  sql {{
    dialect = "sqlite"
    driver = "rlm_sql_sqlite"
    sqlite {{
      filename = "{database}"
      busy_timeout = 5000
    }}
    radius_db = "radius"
    acct_table1 = "radacct"
    acct_table2 = "radacct"
    postauth_table = "radpostauth"
    authcheck_table = "radcheck"
    groupcheck_table = "radgroupcheck"
    authreply_table = "radreply"
    groupreply_table = "radgroupreply"
    usergroup_table = "radusergroup"
    client_table = "nas"
    read_groups = yes
    read_profiles = yes
    read_clients = no
    delete_stale_sessions = yes
    group_attribute = "SQL-Group"
    pool {{
      start = 1
      min = 1
      max = 4
      spare = 1
      uses = 0
      retry_delay = 1
      lifetime = 0
      idle_timeout = 60
    }}
    $INCLUDE ${{modconfdir}}/${{.:name}}/main/${{dialect}}/queries.conf
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    sql
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  post-auth {{
    Post-Auth-Type REJECT {{
    }}
  }}
}}
"""


def require_freeradius() -> None:
    missing = [tool for tool in ("freeradius", "radclient") if shutil.which(tool) is None]
    if missing or not SCHEMA.exists():
        pytest.fail(
            f"FreeRADIUS is not installed ({', '.join(missing) or SCHEMA}): `make test` installs "
            "the Debian packages freeradius and freeradius-utils"
        )


def radius_database(path: Path, group_replies: dict[str, list[tuple[str, str, str]]]) -> Path:
    """A FreeRADIUS database made by FreeRADIUS's own schema.sql, with the operator's group
    reply attributes (radgroupreply) in it."""
    require_freeradius()
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA.read_text())
        db.executemany(
            "INSERT INTO radgroupreply (groupname, attribute, op, value) VALUES (?, ?, ?, ?)",
            [(group, *row) for group, rows in group_replies.items() for row in rows],
        )
    return path


@dataclass
class RadiusAnswer:
    code: str  # Accept or Reject
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class FreeRadius:
    port: int
    log: Path

    def authenticate(self, username: str, password: str) -> RadiusAnswer:
        """One Access-Request through radclient; the answer's code and attributes."""
        request = f'User-Name = "{username}", User-Password = "{password}"\n'
        done = subprocess.run(
            ["radclient", "-x", "-r", "2", "-t", "3", f"127.0.0.1:{self.port}", "auth", SECRET],
            input=request,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        received = re.search(r"Received Access-(\w+)", done.stdout)
        if received is None:
            raise AssertionError(f"radclient got no answer:\n{done.stdout}\n{done.stderr}")
        attributes = {}
        for line in done.stdout[received.end() :].splitlines()[1:]:
            name, _, value = line.strip().partition(" = ")
            if name and value:
                attributes[name] = value.strip('"')
        return RadiusAnswer(received.group(1), attributes)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def freeradius_server(database: Path, workdir: Path) -> Iterator[FreeRadius]:
    require_freeradius()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_udp_port()
    (workdir / "radiusd.conf").write_text(
        CONFIG.format(workdir=workdir, raddb=RADDB, secret=SECRET, database=database, port=port)
    )
    log = workdir / "freeradius.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["freeradius", "-f", "-d", str(workdir), "-l", "stdout"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Ready to process requests" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"FreeRADIUS did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield FreeRadius(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
