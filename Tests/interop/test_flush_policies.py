"""The broker under each flush policy (`--flush none|interval:MS|always`): acks=all produce, an
idempotent producer and a committed transaction all complete, and every acknowledged record is
there after a SIGKILL and restart. Under `always`, acknowledgements wait for a shared fsync and the
transaction's prepare record is made durable before its markers."""

from __future__ import annotations

import pytest

import confluent_helpers as ck
from support import unique_topic

RECORDS = 20_000


@pytest.mark.parametrize("policy", ["always", "interval:50", "none"])
@pytest.mark.timeout_seconds(180)
def test_flush_policy_keeps_acknowledged_writes(broker_factory, policy):
    broker = broker_factory(extra_args=["--flush", policy])
    plain, idem, txn = (unique_topic(f"flush-{kind}") for kind in ("plain", "idem", "txn"))
    for topic in (plain, idem, txn):
        ck.create_topic(broker, topic, 2)

    plain_acks = ck.produce_indexed(broker, plain, range(RECORDS))
    idem_acks = ck.produce_indexed(broker, idem, range(RECORDS), **{"enable.idempotence": True})
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique_topic("flush-tid")})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(1000):
        producer.produce(txn, value=b"t%d" % i, partition=i % 2)
    producer.commit_transaction(30)

    broker.kill9()
    broker.restart()
    ck.check_exactly_once_in_order(ck.read_to_end(broker, plain, [0, 1]), plain_acks)
    ck.check_exactly_once_in_order(ck.read_to_end(broker, idem, [0, 1]), idem_acks)
    committed = ck.read_to_end(broker, txn, [0, 1], **{"isolation.level": "read_committed"})
    assert sorted(r.value for r in committed) == sorted(b"t%d" % i for i in range(1000))
