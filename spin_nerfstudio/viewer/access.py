"""Who may click: keep the viewer on this machine, and let the click panel act for one browser only.

nerfstudio's viewer (viser) listens on all interfaces (``--viewer.websocket-host 0.0.0.0``) by default, so anyone
who can reach the port can open the viewer and, with our click panel, click an object. Two helpers:

- :func:`viewer_exposure_warning` says so when the configured host is not a loopback address; the pipeline prints
  it at start-up. ``--viewer.websocket-host 127.0.0.1`` keeps the viewer on this machine (reach it from elsewhere
  through an SSH tunnel: ``ssh -L 7007:127.0.0.1:7007 host``).
- :class:`ClickOwner` lets a click panel act on clicks from one client only: the first browser that connects to the
  viewer the user started (by viser client id), until it disconnects. Clicks from any other client are ignored.
  A panel subscribes to viser's pointer events (which carry the client id) and asks :meth:`ClickOwner.allows`.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Optional

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_loopback_host(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def viewer_exposure_warning(websocket_host: str, port: Optional[int] = None) -> Optional[str]:
    """A one-line warning when the viewer would listen beyond this machine; None when it is loopback-only."""
    if is_loopback_host(websocket_host):
        return None
    where = "all network interfaces" if websocket_host in ("0.0.0.0", "::", "") else f"'{websocket_host}'"
    port_note = f" port {port}" if port else ""
    return (
        f"the viewer listens on {where}{port_note}: anyone who can reach it can see the scene and click in it; "
        "pass --viewer.websocket-host 127.0.0.1 to keep it on this machine"
    )


class ClickOwner:
    """The one viewer client whose clicks the panel acts on: the first to connect, until it disconnects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: Optional[int] = None

    @property
    def owner(self) -> Optional[int]:
        """Client id of the owner, None before any client connected."""
        return self._owner

    def connected(self, client_id: int) -> None:
        """Record a connection (call from viser's ``on_client_connect``)."""
        with self._lock:
            if self._owner is None:
                self._owner = client_id

    def disconnected(self, client_id: int) -> None:
        """Record a disconnection; the next client to connect becomes the owner."""
        with self._lock:
            if self._owner == client_id:
                self._owner = None

    def allows(self, client_id: Optional[int]) -> bool:
        """Whether a click from ``client_id`` should be acted on (an unknown client never is)."""
        with self._lock:
            return client_id is not None and client_id == self._owner
