"""A broker whose database stops answering (a network that silently drops packets, a hung server:
here a proxy that stops forwarding without closing anything) notices within its
--postgres-request-timeout-ms instead of waiting forever, stops naming itself leader once its
session has passed, and its leases move to the brokers that still reach the database, which serve
every partition meanwhile; once the database answers again it finds its leases gone and steps
down, and an idempotent producer that was writing through it throughout loses nothing and
duplicates nothing."""

from __future__ import annotations

import pytest

import confluent_helpers as ck
from stalling_proxy import StallingProxy
from support import index_of, record_count, scaled_timeout, unique_topic, wait_until
from test_postgres_cluster import SESSION, leaders_in_metadata, lease, pg, spread  # noqa: F401  (pg is a fixture)

PARTITIONS = 6


@pytest.mark.timeout_seconds(300)
def test_a_broker_cut_off_from_the_database_notices_loses_its_leases_and_nothing_acked_is_lost(pg, broker_factory):
    topic = unique_topic("cluster-stall")
    url = pg.new_database()
    proxy = StallingProxy(pg.port)
    cut_url = url.replace(f":{pg.port}/", f":{proxy.port}/")
    assert cut_url != url

    def start(node: int, through: str):
        return broker_factory(extra_args=[
            "--storage", "postgres", "--postgres-url", through, "--node-id", str(node), *SESSION,
            "--postgres-request-timeout-ms", "1000"])

    try:
        first = start(1, url)
        ck.create_topic(first, topic, PARTITIONS)
        brokers = [first, start(2, url), start(3, cut_url)]
        wait_until(lambda: spread(pg, url, [1, 2, 3]), 60, "leadership spread over the three brokers")
        cut = brokers[2]
        held = {p: lease(pg, url, topic, p) for p in range(PARTITIONS)}
        cut_partitions = [p for p, (holder, _) in held.items() if holder == 3]
        assert cut_partitions, held

        n = record_count(20_000)
        recorder = ck.DeliveryRecorder()
        producer = ck.producer(
            first, **{"bootstrap.servers": ",".join(b.bootstrap for b in brokers), "enable.idempotence": True})
        for i in range(n // 2):
            recorder.produce(producer, topic, i)
        assert producer.flush(scaled_timeout(60)) == 0
        proxy.stall()
        for i in range(n // 2, n):
            recorder.produce(producer, topic, i)
        # libpq alone would wait for the stalled answer forever; the broker gives up on it.
        wait_until(lambda: "no answer from the database within 1000 ms" in cut.log_text(), 60,
                   "the cut-off broker noticing its database stopped answering")
        wait_until(lambda: all(lease(pg, url, topic, p)[0] != 3 for p in cut_partitions), 60,
                   "the cut-off broker's leases taken by the others")
        for p in cut_partitions:
            holder, epoch = lease(pg, url, topic, p)
            assert holder in (1, 2) and epoch > held[p][1], (p, held[p], (holder, epoch))
        # While it is cut off, the cluster serves every partition through the other two, and the
        # cut-off broker no longer names itself leader of what it held.
        wait_until(lambda: all(leaders_in_metadata(b, topic).get(p) in (1, 2) for b in brokers[:2] for p in cut_partitions),
                   60, "the live brokers naming the new leaders")
        assert all(leaders_in_metadata(cut, topic).get(p) != 3 for p in cut_partitions)
        during = ck.produce_indexed(first, topic, range(n, n + 600), **{
            "bootstrap.servers": ",".join(b.bootstrap for b in brokers[:2]), "enable.idempotence": True})
        assert {d.partition for d in during.values()} == set(range(PARTITIONS))

        # The first producer's requests caught at the cut-off broker are answered once it can
        # reach the database again (it finds its leases gone and steps down); nothing acked is
        # lost and nothing is written twice.
        proxy.flow()
        wait_until(lambda: "lost leadership" in cut.log_text(), 60, "the cut-off broker stepping down")
        assert producer.flush(scaled_timeout(120)) == 0
        recorder.check(n)
        records = ck.read_to_end(first, topic, list(range(PARTITIONS)))
        # Each producer's records are in its own order; the two interleave.
        assert len(records) == n + len(during)
        for deliveries in (recorder.deliveries, during):
            ck.check_exactly_once_in_order([r for r in records if index_of(r.value) in deliveries], deliveries)
    finally:
        proxy.close()
