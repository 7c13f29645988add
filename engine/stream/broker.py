"""A mosquitto broker on localhost, started and stopped by iotengine: for the main job's live stage, the load
generator (scripts/mqtt_load.py) and the tests.

It is configured as a plant's broker for a scorer with a persistent session should be: persistence on (a restart
keeps the queued messages and the sessions), no cap on the messages queued for a disconnected client
(mosquitto's default of 1,000 would drop the rest while the scorer restarts), and in-flight windows set by each
client (the scorer asks for 65,535 unacknowledged messages; see engine/stream/live.py).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from engine.errors import BrokerError

__all__ = ["LocalBroker", "find_mosquitto"]

CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {folder}/
autosave_interval 1
max_queued_messages 0
max_inflight_messages 0
log_dest file {folder}/mosquitto.log
user {user}
"""


def find_mosquitto() -> str | None:
    """The mosquitto executable (Debian installs it in /usr/sbin, which is not on every user's PATH), or None."""
    return shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(path, os.X_OK)), None
    )


class LocalBroker:
    """``with LocalBroker(folder) as broker:`` a mosquitto on 127.0.0.1:``broker.port``, its data in ``folder``."""

    def __init__(self, folder, port: int | None = None):
        self.executable = find_mosquitto()
        if self.executable is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.config = self.folder / "mosquitto.conf"
        # started as root, mosquitto would drop to the `mosquitto` user, which cannot write into our folder
        self.config.write_text(CONFIG.format(port=self.port, folder=self.folder, user=getpass.getuser()))
        self._process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalBroker:
        if self._process is not None:
            raise BrokerError(f"the broker on port {self.port} is running")
        self._process = subprocess.Popen(
            [self.executable, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace").strip()
                self._process = None
                raise BrokerError(f"mosquitto on port {self.port} exited at start: {error or 'no message'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not accept connections on port {self.port} within 10 s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (it saves its sessions and queues) or, with ``kill``, SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, and start again on the same port with the saved state."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
