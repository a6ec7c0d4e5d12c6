"""nginx as a reference relay: the issue's own floor, measured on this machine in this run.

Owns: `nginx_config(...)` (pure) and `start_nginx(...)`. The issue's reference table puts
nginx at +0.05 ms added p50 on its machine; loopback and wakeup costs differ a lot between
machines (on the shared development VM here nginx itself added 0.07-0.24 ms), so the bench
measures nginx beside the proxy instead of quoting that figure.

Rules:
- Optional: when no `nginx` binary is found, the bench says so under the table and runs
  everything else (Debian: `apt install nginx-light`).
- One process (`master_process off`), pinned like the proxy, with the setup of a reverse
  proxy tuned for this job: HTTP/1.1 and a keep-alive pool to the upstream, no buffering
  (streams pass through as they come), no access log.
- Everything lives in the bench's temp dir; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench import procs


def nginx_config(port: int, upstream_port: int, workdir: Path) -> str:
    """A one-process reverse proxy on 127.0.0.1:`port` in front of 127.0.0.1:`upstream_port`."""
    host = procs.HOST
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "nginx.error.log"} warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {workdir / "nginx-body"};
    proxy_temp_path {workdir / "nginx-proxy"};
    upstream fake {{ server {host}:{upstream_port}; keepalive 256; }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary on PATH (or in /usr/sbin, which a root PATH may lack), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def version(binary: str) -> str:
    """`nginx/1.22.1` (nginx prints its version on stderr); "nginx" if it says nothing."""
    try:
        done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "nginx"
    said = (done.stderr or done.stdout).strip()
    return said.rsplit(":", 1)[-1].strip() or "nginx"


def start_nginx(workdir: Path, cores: frozenset[int] | None, upstream_port: int,
                binary: str | None) -> procs.Child:  # fmt: skip
    """Start `binary` (find_nginx's answer) in front of `upstream_port`; wait until it
    accepts TCP (10 s)."""
    if binary is None:
        raise procs.StartError(
            "no nginx binary on PATH (Debian: apt install nginx-light); the reference row is "
            "left out"
        )
    home = workdir / "nginx"
    home.mkdir(exist_ok=True)
    port = procs.free_port()
    config = home / "nginx.conf"
    config.write_text(nginx_config(port, upstream_port, home), encoding="utf-8")
    argv = [binary, "-p", str(home), "-c", str(config)]
    return procs.start_listening("nginx", argv, workdir, cores, port, timeout=10.0)
