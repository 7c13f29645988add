"""The scorer's paho-mqtt client: MQTT 5, a persistent session, manual acknowledgements, reconnection with
backoff, and a clean close that lets queued alerts, states and acknowledgements reach the broker."""

from __future__ import annotations

import time

from engine.errors import BrokerError

__all__ = ["close_client", "subscriber_client"]


def subscriber_client(
    settings, receive_maximum: int, *, on_message, on_connect, on_disconnect, on_subscribe, on_connect_fail
):
    """A started (``loop_start``) client of ``settings`` (:class:`engine.stream.live.MqttSettings`) that connects
    in the background and keeps reconnecting; ``on_connect`` subscribes."""
    from paho.mqtt.client import Client, MQTTv5
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=MQTTv5, manual_ack=True)
    client.max_queued_messages_set(0)  # alerts and states published while disconnected wait for the broker
    client.max_inflight_messages_set(0)  # no client-side window: paho rescans its queue per acknowledgement
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_connect_fail = on_connect_fail
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = settings.session_expiry_s
    properties.ReceiveMaximum = (
        receive_maximum  # unacknowledged messages the broker may send: they wait for checkpoints
    )
    try:
        client.connect_async(
            settings.host, settings.port, settings.keepalive_s, clean_start=False, properties=properties
        )
    except (OSError, ValueError) as exc:
        raise BrokerError(f"MQTT broker {settings.host}:{settings.port}: {exc}") from exc
    client.loop_start()
    return client


def close_client(client, timeout_s: float = 5.0) -> None:
    """Disconnect once what is queued has been written (or ``timeout_s`` passed), and stop the network thread."""
    deadline = time.monotonic() + timeout_s
    while client.want_write() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
