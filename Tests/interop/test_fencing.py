"""Fencing codes: a zombie transactional producer must learn it is fenced, from every API it can
still call, with the code Kafka gives there. Since KIP-588 a partition write (Produce, and the
partition check of TxnOffsetCommit) answers INVALID_PRODUCER_EPOCH, the code librdkafka and the
Java client treat as fatal on Produce; the transaction coordinator's APIs answer PRODUCER_FENCED."""

from __future__ import annotations

import socket
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from kafka.protocol.producer.produce import ProduceRequest, ProduceResponse
from kafka.protocol.producer.transaction import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from kafka.record.default_records import DefaultRecordBatchBuilder

import confluent_helpers as ck
import kafka_wire as wire
from support import Deadline, unique_topic

INVALID_PRODUCER_EPOCH = 47
PRODUCER_FENCED = 90
CONCURRENT_TRANSACTIONS = 51


class Client:
    """One connection sending kafka-python's protocol messages (generated from Kafka's schemas)."""

    def __init__(self, broker) -> None:
        host, port = broker.bootstrap.split(":")
        self.sock = wire.connect((host, int(port)))
        self.correlation = 0

    def send(self, request, response_type, version: int):
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="fencing-test")
        self.sock.sendall(bytes(request.encode(header=True, framed=True)))
        return response_type[version].decode(wire.read_frame(self.sock), header=True)

    def init_producer_id(self, transactional_id: str, producer_id: int = -1, epoch: int = -1):
        request = InitProducerIdRequest[4](
            transactional_id=transactional_id, transaction_timeout_ms=60000, producer_id=producer_id,
            producer_epoch=epoch)
        return self.send(request, InitProducerIdResponse, 4)

    def close(self) -> None:
        self.sock.close()


def transactional_batch(producer_id: int, epoch: int, sequence: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=1, producer_id=producer_id, producer_epoch=epoch,
        base_sequence=sequence, batch_size=1 << 20)
    builder.append(0, timestamp=int(time.time() * 1000), key=None, value=b"zombie", headers=[])
    return bytes(builder.build())


def produce(client: Client, transactional_id: str, topic: str, producer_id: int, epoch: int, sequence: int) -> int:
    R = ProduceRequest[9]
    request = R(
        transactional_id=transactional_id, acks=-1, timeout_ms=10000,
        topic_data=[R.TopicProduceData(name=topic, partition_data=[
            R.TopicProduceData.PartitionProduceData(index=0, records=transactional_batch(producer_id, epoch, sequence))
        ])])
    response = client.send(request, ProduceResponse, 9)
    return response.responses[0].partition_responses[0].error_code


def add_partition(client: Client, transactional_id: str, topic: str, producer_id: int, epoch: int) -> int:
    R = AddPartitionsToTxnRequest[3]
    request = R(
        v3_and_below_transactional_id=transactional_id, v3_and_below_producer_id=producer_id,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[R.AddPartitionsToTxnTopic(name=topic, partitions=[0])])
    response = client.send(request, AddPartitionsToTxnResponse, 3)
    return response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code


def test_a_zombie_learns_it_is_fenced_from_its_produce(broker):
    topic = unique_topic("zombie")
    ck.create_topic(broker, topic, 1)
    tid = unique_topic("tid")
    fatal: list[KafkaError] = []
    zombie = Producer({
        "bootstrap.servers": broker.bootstrap, "transactional.id": tid, "linger.ms": 0,
        "error_cb": lambda err: fatal.append(err) if err.fatal() else None,
    })
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1")
    zombie.flush(30)

    successor = ck.producer(broker, **{"transactional.id": tid})
    successor.init_transactions(30)  # bumps the epoch and aborts the zombie's transaction

    # Only the Produce answer can tell the zombie: it calls no transaction API in between.
    try:
        zombie.produce(topic, value=b"zombie-2")
        zombie.flush(30)
        deadline = Deadline(30, "the zombie's fatal error")
        while not fatal:
            deadline.check()
            zombie.poll(0.2)
    except KafkaException as raised:
        fatal.append(raised.args[0])
    assert fatal[0].fatal() and fatal[0].code() == KafkaError._FENCED, fatal[0]
    try:
        zombie.commit_transaction(10)
        raise AssertionError("a fenced producer committed")
    except KafkaException as raised:
        assert raised.args[0].fatal(), raised.args[0]

    successor.begin_transaction()
    successor.produce(topic, value=b"successor")
    successor.commit_transaction(30)
    records = ck.read_to_end(broker, topic, [0], **{"isolation.level": "read_committed"})
    assert [r.value for r in records] == [b"successor"]


def test_every_api_a_zombie_calls_answers_kafkas_fencing_code(broker):
    topic = unique_topic("zombie-wire")
    ck.create_topic(broker, topic, 1)
    tid = unique_topic("tid")
    group = unique_topic("group")
    client = Client(broker)
    try:
        first = client.init_producer_id(tid)
        assert first.error_code == 0, first
        pid, old = first.producer_id, first.producer_epoch
        assert add_partition(client, tid, topic, pid, old) == 0
        assert produce(client, tid, topic, pid, old, 0) == 0

        # The successor's InitProducerId aborts the open transaction first, then bumps the epoch.
        deadline = Deadline(30, "the successor's InitProducerId")
        while True:
            deadline.check()
            successor = client.init_producer_id(tid)
            if successor.error_code != CONCURRENT_TRANSACTIONS:
                break
            time.sleep(0.1)
        assert successor.error_code == 0 and successor.producer_id == pid and successor.producer_epoch > old, successor

        assert produce(client, tid, topic, pid, old, 1) == INVALID_PRODUCER_EPOCH
        assert add_partition(client, tid, topic, pid, old) == PRODUCER_FENCED
        offsets = client.send(
            AddOffsetsToTxnRequest[3](transactional_id=tid, producer_id=pid, producer_epoch=old, group_id=group),
            AddOffsetsToTxnResponse, 3)
        assert offsets.error_code == PRODUCER_FENCED, offsets
        end = client.send(
            EndTxnRequest[3](transactional_id=tid, producer_id=pid, producer_epoch=old, committed=True), EndTxnResponse, 3)
        assert end.error_code == PRODUCER_FENCED, end
        R = TxnOffsetCommitRequest[3]
        commit = client.send(
            R(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=old, generation_id=-1,
              member_id="", group_instance_id=None,
              topics=[R.TxnOffsetCommitRequestTopic(name=topic, partitions=[
                  R.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                      partition_index=0, committed_offset=1, committed_leader_epoch=-1, committed_metadata="")
              ])]),
            TxnOffsetCommitResponse, 3)
        assert commit.topics[0].partitions[0].error_code == INVALID_PRODUCER_EPOCH, commit
        reinit = client.init_producer_id(tid, producer_id=pid, epoch=old)
        assert reinit.error_code == PRODUCER_FENCED, reinit
    finally:
        client.close()
