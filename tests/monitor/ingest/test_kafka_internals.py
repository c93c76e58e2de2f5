"""Wider socket reads: the same bytes in fewer `recv` calls, on a real socket and against the
real broker; a consumer whose kafka-python lacks the hook is left as it is."""

import socket
import threading
import uuid

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaConnectionError

from driftd.monitor.ingest import kafka_internals
from tests.monitor.ingest.test_consumer import _event, _setup
from tests.monitor.ingest.test_recordbatches import _produce


class _CountingSocket:
    """A real non-blocking socket that notes the size of what each `recv` returned."""

    def __init__(self, sock: socket.socket):
        self.sock, self.sizes = sock, []

    def recv(self, n: int) -> bytes:
        data = self.sock.recv(n)
        self.sizes.append(len(data))
        return data


class _Transport:
    def __init__(self, sock):
        self._sock = sock


def test_read_available_returns_every_readable_byte_in_wide_reads():
    ours, theirs = socket.socketpair()
    payload = bytes(range(256)) * 4096  # 1 MiB
    sender = threading.Thread(target=theirs.sendall, args=(payload,))
    sender.start()
    ours.setblocking(False)
    counting = _CountingSocket(ours)
    threading.Event().wait(0.05)  # let the sender fill the socket's buffer
    got = b""
    for _ in range(1000):  # bounded: the sender is local
        data, error = kafka_internals.read_available(_Transport(counting))
        assert error is None
        got += data
        if len(got) == len(payload):
            break
        threading.Event().wait(0.001)  # drained: let the sender write more
    sender.join(10)
    assert got == payload
    # each call takes what is buffered, beyond kafka-python's 4096 bytes
    assert max(counting.sizes) > 4096
    theirs.close()
    data, error = kafka_internals.read_available(_Transport(counting))
    assert data == b"" and isinstance(error, KafkaConnectionError)
    assert "socket disconnected" in str(error)
    ours.close()


def test_install_declines_a_client_without_the_hook():
    assert kafka_internals.install_wide_reads(object()) is False


def _wide(consumer) -> list[bool]:
    """For each open connection of the consumer: does it read wide?"""
    conns = consumer._client._manager._conns.values()
    return [getattr(c.transport._sock_recv, "__func__", None) is kafka_internals.read_available
            for c in conns if c.transport is not None]


def test_an_installed_consumer_reads_the_same_records_wide(broker):
    topic = f"wide-{uuid.uuid4().hex[:8]}"
    values = [_event(i) for i in range(300)] + [b"x" * 700_000] + [_event(300)]
    _produce(broker.bootstrap, topic, values, max_request_size=2_000_000)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_bytes=4_000_000,
                             max_partition_fetch_bytes=4_000_000)
    assert kafka_internals.install_wide_reads(consumer)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    got = []
    for _ in range(60):
        for msgs in consumer.poll(timeout_ms=500).values():
            got += [m.value for m in msgs]
        if len(got) >= len(values):
            break
    wide = _wide(consumer)
    consumer.close()
    assert got == values
    assert True in wide  # the fetch connection, opened after the install, reads wide


def test_the_ingestor_reads_wide(tmp_path, broker):
    (events, _), _, store, _, ingestor = _setup(tmp_path, broker)
    _produce(broker.bootstrap, events, [_event(i) for i in range(200)])
    stats = ingestor.drain(max_seconds=30)
    assert stats.events == 200 and store.event_count("credit-risk") == 200
    assert True in _wide(ingestor._consumer)
    ingestor.close()
