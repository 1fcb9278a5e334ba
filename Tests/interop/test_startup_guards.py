"""A broker refuses to start beside another one: on the same data directory (an exclusive lock) or
on an address already in use (checked before the data directory is touched)."""

from __future__ import annotations

import socket

import pytest

from confluent_helpers import create_topic, produce_indexed, read_to_end
from once_broker import Broker, BrokerError
from support import index_of, unique_topic


def test_a_second_broker_on_the_same_data_directory_is_refused(broker, tmp_path):
    topic = unique_topic("locked")
    create_topic(broker, topic, 1)
    produce_indexed(broker, topic, range(10), partition=0)

    second = Broker(broker.data_dir, tmp_path / "second.log")
    with pytest.raises(BrokerError):
        second.start()
    second.cleanup()
    assert second.process.returncode != 0
    assert "is in use by another broker" in second.log_text(), second.log_tail()

    # The first broker is untouched and still serves.
    produce_indexed(broker, topic, range(10, 20), partition=0)
    assert [index_of(r.value) for r in read_to_end(broker, topic, [0])] == list(range(20))

    # The kernel drops the lock with its process: after a kill -9 the directory opens again.
    broker.kill9()
    third = Broker(broker.data_dir, tmp_path / "third.log")
    third.start()
    try:
        assert [index_of(r.value) for r in read_to_end(third, topic, [0])] == list(range(20))
    finally:
        third.stop()


def test_an_address_in_use_is_named_before_the_data_directory_is_touched(broker_factory):
    broker = broker_factory(start=False)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", broker.port))
    holder.listen(1)
    try:
        with pytest.raises(BrokerError):
            broker.start()
    finally:
        holder.close()
    assert f"127.0.0.1:{broker.port} is already in use" in broker.log_text(), broker.log_tail()
    assert list(broker.data_dir.iterdir()) == [], "the data directory was touched"
    assert broker.process.returncode != 0
