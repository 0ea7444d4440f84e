"""MQTT, the convention of camera operations (Frigate, Home Assistant, ZoneMinder).

``--mqtt mqtt://[user:password@]host[:port]/prefix`` (``mqtts://`` for TLS) publishes:

=====================================  ==========================================================
topic                                  payload
=====================================  ==========================================================
``<prefix>/status``                    ``online`` / ``offline`` (retained; ``offline`` is also the
                                       broker's last will, so a crashed watch shows as offline)
``<prefix>/<camera>/problem``          ``ON`` while any alert of the camera is open, else ``OFF``
                                       (retained)
``<prefix>/<camera>/<kind>``           ``ON`` / ``OFF`` per alert kind (retained)
``<prefix>/<camera>/alert``            every alert event as JSON (open and close; with its
                                       snapshot path when there is one)
``homeassistant/binary_sensor/...``    Home Assistant MQTT discovery (retained): each camera's
                                       ``problem`` sensor appears without configuration
=====================================  ==========================================================

The client (``paho-mqtt``) runs its own network thread: publishing never blocks scoring, a lost
broker is reconnected with back-off (1 s doubling to 60 s) and retained states are published
again on every connection. Credentials go to the broker only, never into a log line.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.parse

from .health import ALERT_KINDS
from .wire import redact_url, strict_json

__all__ = ["MqttSink", "parse_mqtt_url"]

log = logging.getLogger(__name__)

#: alert kinds that are states (open and close); ``reconnect`` is a one-off event
_STATE_KINDS = tuple(k for k in ALERT_KINDS if k != "reconnect")


def parse_mqtt_url(url: str) -> dict:
    """``{host, port, tls, username, password, prefix}`` of an ``mqtt://`` / ``mqtts://`` URL (ValueError)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError(f"--mqtt must look like mqtt://host[:port]/prefix, got {redact_url(url)!r}")
    prefix = u.path.strip("/") or "hybrid_drift"
    if any(c in prefix for c in "#+") or "\x00" in prefix:
        raise ValueError(f"the MQTT topic prefix may not hold '#', '+' or NUL, got {prefix!r}")
    try:
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise ValueError(f"--mqtt: bad port in {redact_url(url)!r}") from exc
    return {"host": u.hostname, "port": port, "tls": u.scheme == "mqtts",
            "username": None if u.username is None else urllib.parse.unquote(u.username),
            "password": None if u.password is None else urllib.parse.unquote(u.password), "prefix": prefix}


class MqttSink:
    """Publishes a watch's alerts and camera states to an MQTT broker (see the module docstring)."""

    def __init__(self, url: str, cameras, *, discovery_prefix: str = "homeassistant", keepalive: int = 30):
        try:
            import paho.mqtt.client as mqtt
        except ImportError as exc:  # pragma: no cover - an install without the extra
            raise ImportError("--mqtt needs paho-mqtt: pip install 'hybrid-drift[mqtt]'") from exc
        cfg = parse_mqtt_url(url)
        self.url, self.prefix, self.discovery = url, cfg["prefix"], discovery_prefix
        self.cameras = list(cameras)
        self.open: dict[str, set] = {c: set() for c in self.cameras}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"hybrid_drift-{socket.gethostname()}-{os.getpid()}")
        if cfg["username"] is not None:
            self.client.username_pw_set(cfg["username"], cfg["password"])
        if cfg["tls"]:
            self.client.tls_set()
        self.client.will_set(f"{self.prefix}/status", "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(cfg["host"], cfg["port"], keepalive=keepalive)
        self.client.loop_start()

    # ------------------------------------------------------------------ connection
    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if getattr(reason, "is_failure", False):
            log.warning("MQTT %s: connection refused (%s)", redact_url(self.url), reason)
            return
        log.info("MQTT %s: connected", redact_url(self.url))
        client.publish(f"{self.prefix}/status", "online", qos=1, retain=True)
        for cam in self.cameras:  # discovery and the current states, again on every (re)connection
            client.publish(self._discovery_topic(cam), json.dumps(self._discovery_config(cam)), qos=1, retain=True)
            self._publish_states(cam)

    def _on_disconnect(self, client, userdata, flags, reason, properties=None):
        log.warning("MQTT %s: disconnected (%s); reconnecting with back-off", redact_url(self.url), reason)

    def _discovery_topic(self, cam: str) -> str:
        return f"{self.discovery}/binary_sensor/hybrid_drift_{cam}/problem/config"

    def _discovery_config(self, cam: str) -> dict:
        return {"name": f"{cam} camera problem", "unique_id": f"hybrid_drift_{self.prefix}_{cam}_problem",
                "device_class": "problem", "state_topic": f"{self.prefix}/{cam}/problem",
                "payload_on": "ON", "payload_off": "OFF",
                "availability_topic": f"{self.prefix}/status", "payload_available": "online",
                "payload_not_available": "offline", "json_attributes_topic": f"{self.prefix}/{cam}/alert",
                "device": {"identifiers": [f"hybrid_drift_{self.prefix}_{cam}"], "name": f"Camera {cam}",
                           "manufacturer": "hybrid_drift", "model": "image drift monitor"}}

    def _publish_states(self, cam: str) -> None:
        open_kinds = self.open.setdefault(cam, set())
        self.client.publish(f"{self.prefix}/{cam}/problem", "ON" if open_kinds else "OFF", qos=1, retain=True)
        for kind in _STATE_KINDS:
            self.client.publish(f"{self.prefix}/{cam}/{kind}", "ON" if kind in open_kinds else "OFF", qos=1,
                                retain=True)

    # ------------------------------------------------------------------ events
    def publish(self, event: dict) -> None:
        """Publish an alert event (frame events are not sent: Prometheus is for rates)."""
        if event.get("type") != "alert":
            return
        cam, kind = event["camera"], event["kind"]
        self.client.publish(f"{self.prefix}/{cam}/alert", strict_json(event), qos=1)
        if kind in _STATE_KINDS:
            open_kinds = self.open.setdefault(cam, set())
            if event.get("ongoing"):
                open_kinds.add(kind)
            else:
                open_kinds.discard(kind)
            self._publish_states(cam)

    def close(self, wait: float = 5.0) -> None:
        """Publish the final states and ``offline``, flush, disconnect."""
        info = self.client.publish(f"{self.prefix}/status", "offline", qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=wait)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()
