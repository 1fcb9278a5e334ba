"""Failover time of a three-broker postgres cluster: SIGKILL the leader of a partition, then time
until an idempotent confluent-kafka produce to that partition is acknowledged. Repeated KILLS
times (the killed broker is restarted between kills and gets its share back by hand-off),
printing each time and the median and max. Default session timeout and heartbeat (9000/2000 ms).
usage: ONCE_BIN=.build/release/once python3 bench/cluster_failover.py [KILLS]"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "interop"))
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from once_broker import Broker  # noqa: E402
from postgres_cluster import PostgresCluster  # noqa: E402


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    pg = PostgresCluster()
    pg.start()
    work = Path(tempfile.mkdtemp(prefix="once-failover-"))
    url = pg.new_database()
    brokers = []
    try:
        for node in (1, 2, 3):
            b = Broker(work / f"data-{node}", work / f"broker-{node}.log",
                       extra_args=["--storage", "postgres", "--postgres-url", url, "--node-id", str(node)])
            b.start()
            brokers.append(b)
            if node == 1:
                admin = AdminClient({"bootstrap.servers": b.bootstrap})
                admin.create_topics([NewTopic("failover", 1)])["failover"].result(30)
        bootstrap = ",".join(b.bootstrap for b in brokers)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0})
        database = url.rsplit("/", 1)[1]

        def acked() -> None:
            producer.produce("failover", b"x", partition=0)
            assert producer.flush(120) == 0

        acked()
        times = []
        for _ in range(kills):
            holder = int(pg.psql("SELECT holder FROM once.partition_leases WHERE topic = 'failover'", database))
            leader = brokers[holder - 1]
            killed = time.monotonic()
            leader.kill9()
            acked()
            times.append(time.monotonic() - killed)
            print(f"leader {holder} killed: first acked produce after {times[-1]:.2f} s", flush=True)
            leader.restart()
            acked()
        print(f"failover over {kills} kills: median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    finally:
        for b in brokers:
            if b.is_alive():
                b.stop()
        pg.cleanup()


if __name__ == "__main__":
    main()
