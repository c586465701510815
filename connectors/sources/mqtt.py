"""MQTT source: subscribe with QoS 1 and PUBACK each message only once it is durably in the ingest log.

paho-mqtt 2.x with ``manual_ack=True``: the network thread hands each message
to the group committer and returns at once; when the commit (write + fsync)
completes, a callback sends the PUBACK. A message whose ack was never sent
(crash, disconnect) is redelivered by the broker, because the session is
persistent (``clean_start=False`` with a fixed client id); the pipeline's
duplicate guard absorbs such redeliveries. Reconnects back off exponentially
between ``reconnect_min_s`` and ``reconnect_max_s`` and re-subscribe every time
(a broker that lost its state has lost our subscriptions too). TLS,
username/password and MQTT over WebSockets are configuration; which client
may publish on which topics is the broker's ACL file.

With ``limits.per_device_per_s``, a message whose parsed device is over its
rate is held, unacknowledged, until its device's bucket has the token, then
appended and acknowledged (counted as ``rate_limited`` in ``counters``): the
broker's in-flight window bounds how many are held. ``limits.junk_bodies_per_epoch``
bounds the junk this source leaves in the log.

When the log cannot write (disk full), a message is held without its PUBACK
and its append retried with a bounded backoff until it succeeds: the broker
keeps it in flight, so nothing is acknowledged before it is durable, and ingest
resumes by itself once space is freed. The broker's in-flight limit bounds
how many messages are held.
"""

from __future__ import annotations

import heapq
import ssl
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from veristream.connectors import observe
from veristream.connectors.ingest_log import AppendResult, GroupCommitter
from veristream.connectors.limits import (
    NS_PER_S,
    KeyedBuckets,
    RateLimit,
    SourceCounters,
    device_id_of,
)
from veristream.connectors.sources.config import MqttSourceConfig
from veristream.provers.reasons import Reason


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_client(
    config: MqttSourceConfig, client_id: str, *, clean_start: bool, manual_ack: bool
) -> mqtt.Client:
    """A paho client set up from ``config``: transport, TLS, credentials, reconnect backoff."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_start,
        protocol=mqtt.MQTTv311,
        transport=config.transport,
        manual_ack=manual_ack,
    )
    if config.transport == "websockets":
        client.ws_set_options(path=config.ws_path)
    if config.tls is not None:
        client.tls_set(
            ca_certs=str(config.tls.ca_file),
            certfile=str(config.tls.cert_file) if config.tls.cert_file else None,
            keyfile=str(config.tls.key_file) if config.tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(not config.tls.server_hostname_check)
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    # paho's backoff doubles from min to max; it takes seconds and works with fractions.
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
    return client


# Backoff between retries of appends that failed (a full disk): from the first to the cap.
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 2.0


@dataclass
class MqttStats:
    """Counters of one source (in memory; the durable truth is the log's ``counts()``)."""

    received: int = 0
    acked: int = 0
    connects: int = 0
    disconnects: int = 0
    subscribes: int = 0
    append_failures: int = 0
    last_error: str = ""
    results: dict[str, int] = field(default_factory=dict)


class MqttSource:
    """Subscribes to ``config.topics`` and appends every message to the log before its PUBACK."""

    def __init__(
        self, config: MqttSourceConfig, committer: GroupCommitter, *, max_pending: int | None = None
    ) -> None:
        self.config = config
        self.committer = committer
        self.max_pending = max_pending or committer.max_pending
        self.stats = MqttStats()
        self._lock = threading.Lock()
        self._subscribed = threading.Condition(self._lock)
        # messages handed to the committer whose PUBACK is not sent yet; stop() waits for them
        self._unacked = 0
        self._settled = threading.Condition(self._lock)
        self._stopping = False
        # messages whose append failed, waiting (unacknowledged) for the retry thread
        self._held: list[tuple[mqtt.Client, int, int, tuple[bytes, str, int]]] = []
        self._retrying: threading.Thread | None = None
        # --- limits: per-device buckets; rate-limited messages wait here, unacknowledged
        self.counters = SourceCounters()
        limits = config.limits
        self.per_device = (
            KeyedBuckets(
                RateLimit.per_second(limits.per_device_per_s, limits.burst),
                max_keys=limits.max_tracked_keys,
            )
            if limits.per_device_per_s is not None
            else None
        )
        if limits.junk_bodies_per_epoch is not None:
            committer.log.bound_junk("mqtt", limits.junk_bodies_per_epoch)
        self._deferred: list[tuple[float, int, mqtt.Client, int, int, tuple[bytes, str, int]]] = []
        self._deferred_due = threading.Condition(self._lock)
        self._deferring: threading.Thread | None = None
        self.client = make_client(
            config, config.client_id, clean_start=config.clean_start, manual_ack=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- callbacks (paho's network thread) ---------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            with self._lock:
                self.stats.last_error = f"connect refused: {reason}"
            return
        with self._lock:
            self.stats.connects += 1
        client.subscribe([(topic, self.config.qos) for topic in self.config.topics])

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._lock:
            self.stats.disconnects += 1
            self.stats.last_error = f"disconnected: {reason}"

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: Any, _props: Any
    ) -> None:
        with self._subscribed:
            if any(code.is_failure for code in codes):
                self.stats.last_error = f"subscribe refused: {codes}"
                return
            self.stats.subscribes += 1
            self._subscribed.notify_all()

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Blocking here is the backpressure: the broker stops sending when we stop reading.
        while self.committer.pending + len(self._held) >= self.max_pending:
            time.sleep(0.001)
        with self._lock:
            if self._stopping:
                return  # neither logged nor acknowledged: the broker redelivers it to the next session
            self.stats.received += 1
            self._unacked += 1
        mid, qos = message.mid, message.qos
        item = (bytes(message.payload), f"mqtt:{message.topic}", _now_ms())
        if self.per_device is not None:
            device = device_id_of(item[0])
            delay_ns = self.per_device.reserve(device) if device is not None else 0
            if delay_ns:
                self._defer(client, mid, qos, item, delay_ns)
                return
        self._submit(client, mid, qos, item)

    def _submit(
        self, client: mqtt.Client, mid: int, qos: int, item: tuple[bytes, str, int]
    ) -> None:
        future = self.committer.submit([item], block=True)
        future.add_done_callback(lambda done: self._after_commit(client, mid, qos, item, done))

    def _defer(
        self,
        client: mqtt.Client,
        mid: int,
        qos: int,
        item: tuple[bytes, str, int],
        delay_ns: int,
    ) -> None:
        """Hold a rate-limited message, unacknowledged, until its device's token is due."""
        self.counters.count(Reason.RATE_LIMITED)
        due = time.monotonic() + delay_ns / NS_PER_S
        with self._deferred_due:
            heapq.heappush(self._deferred, (due, mid, client, mid, qos, item))
            if self._deferring is None:
                self._deferring = threading.Thread(
                    target=self._release_deferred, name="mqtt-rate-limit", daemon=True
                )
                self._deferring.start()
            self._deferred_due.notify_all()

    def _release_deferred(self) -> None:
        """Append each held message when it is due; on stop, drop them (the broker redelivers)."""
        while True:
            with self._deferred_due:
                while not self._stopping and (
                    not self._deferred or self._deferred[0][0] > time.monotonic()
                ):
                    timeout = self._deferred[0][0] - time.monotonic() if self._deferred else None
                    self._deferred_due.wait(timeout)
                if self._stopping:
                    # neither logged nor acknowledged: the next session gets them again
                    self._unacked -= len(self._deferred)
                    self._deferred.clear()
                    self._deferring = None
                    self._settled.notify_all()
                    return
                _, _, client, mid, qos, item = heapq.heappop(self._deferred)
            self._submit(client, mid, qos, item)

    def _after_commit(
        self,
        client: mqtt.Client,
        mid: int,
        qos: int,
        item: tuple[bytes, str, int],
        done: Future[list[AppendResult]],
    ) -> None:
        if done.exception() is not None:
            # Not durable: no PUBACK; held for the retry thread (the broker keeps it in flight).
            self._hold([(client, mid, qos, item)], done.exception())
            return
        result = done.result()[0]
        observe.notify(item[1], [result])
        self._acknowledge(client, mid, qos, result)

    def _acknowledge(
        self, client: mqtt.Client, mid: int, qos: int, result: AppendResult
    ) -> None:
        client.ack(mid, qos)
        with self._lock:
            self.stats.acked += 1
            key = "accepted" if result.accepted else str(result.reason)
            self.stats.results[key] = self.stats.results.get(key, 0) + 1
            self._unacked -= 1
            self._settled.notify_all()

    def _hold(
        self,
        held: list[tuple[mqtt.Client, int, int, tuple[bytes, str, int]]],
        error: BaseException | None,
    ) -> None:
        with self._lock:
            self.stats.append_failures += len(held)
            self.stats.last_error = f"log append failed: {error}"
            self._held.extend(held)
            if self._retrying is None:
                self._retrying = threading.Thread(
                    target=self._retry_held, name="mqtt-append-retry", daemon=True
                )
                self._retrying.start()

    def _retry_held(self) -> None:
        """Append the held messages again, backing off while the log keeps failing."""
        delay = _RETRY_FIRST_S
        while True:
            time.sleep(delay)
            with self._lock:
                held, self._held = self._held, []
                if not held or self._stopping:
                    # stopping: unlogged and unacknowledged, the broker redelivers them
                    self._unacked -= len(held)
                    self._settled.notify_all()
                    self._retrying = None
                    return
            try:
                results = self.committer.append([item for *_, item in held])
            except Exception as error:  # the log's failure, whatever it is, means "not durable"
                with self._lock:
                    self.stats.last_error = f"log append failed: {error}"
                    self._held[:0] = held
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            for (client, mid, qos, item), result in zip(held, results, strict=True):
                observe.notify(item[1], [result])
                self._acknowledge(client, mid, qos, result)
            delay = _RETRY_FIRST_S

    # --- lifecycle -----------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> MqttSource:
        """Connect (retrying with backoff in the background) and wait for the first subscription."""
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()
        if not self.wait_subscribed(1, timeout_s):
            self.stop()
            raise RuntimeError(
                f"MQTT source could not subscribe at {self.config.host}:{self.config.port}: {self.stats.last_error}"
            )
        return self

    def wait_subscribed(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` subscriptions (one per connect) have been granted."""
        deadline = time.monotonic() + timeout_s
        with self._subscribed:
            while self.stats.subscribes < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._subscribed.wait(remaining)
        return True

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop taking messages, acknowledge those already logged, then disconnect.

        The subscription stays in the broker's persistent session (no
        unsubscribe), so what is published meanwhile waits for the next start;
        messages arriving after the stop began are neither logged nor
        acknowledged, and the broker redelivers them then. Without the drain, a
        message logged just before the disconnect would lose its PUBACK and come
        back as a duplicate.
        """
        deadline = time.monotonic() + drain_timeout_s
        with self._settled:
            self._stopping = True
            self._deferred_due.notify_all()
            while self._unacked > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._settled.wait(remaining)
        self.client.disconnect()
        self.client.loop_stop()


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged a QoS 1 publish (raises if paho dropped it).

    A message published while the broker is away keeps ``rc=MQTT_ERR_NO_CONN``
    although paho queues it and sends it on reconnect, so ``wait_for_publish``
    would raise for a message that is on its way; its published flag is the truth.
    """
    if info.rc == mqtt.MQTT_ERR_NO_CONN:
        return bool(info._published)
    return info.is_published()


def publish_messages(
    config: MqttSourceConfig,
    messages: Iterable[tuple[str, bytes]],
    *,
    client_id: str = "veristream-simulator",
    timeout_s: float = 60.0,
    max_inflight: int = 1000,
) -> int:
    """Publish ``(topic, payload)`` pairs with QoS 1 and wait for every PUBACK; returns how many.

    paho re-sends unacknowledged messages after a reconnect, so a broker
    restart mid-run delays messages but loses none.
    """
    client = make_client(config, client_id, clean_start=True, manual_ack=False)
    client.max_inflight_messages_set(max_inflight)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect_async(config.host, config.port, config.keepalive_s)
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise RuntimeError(f"MQTT publisher could not connect to {config.host}:{config.port}")
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            while not _acknowledged(info):
                if time.monotonic() > deadline:
                    raise RuntimeError("MQTT publish was not acknowledged in time")
                time.sleep(0.005)
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()
