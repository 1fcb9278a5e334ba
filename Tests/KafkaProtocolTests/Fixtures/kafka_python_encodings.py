#!/usr/bin/env python3
"""Writes KafkaPythonEncodings.swift: kafka-python's own encoding of every generated sample.

kafka-python 3.0.12 has an independent codec driven by the same schemas. This script takes the
Swift encodings of `sample(version:unknownTags: false)` for every message and version, decodes
each with kafka-python, re-encodes it with kafka-python, fails loudly on any difference, and
stores kafka-python's bytes as the fixture that GoldenBytesTests compares against.

    KAFKA_PROTOCOL_DUMP_SAMPLES=/tmp/samples.txt swift test --filter GoldenBytesTests
    python3 Tests/KafkaProtocolTests/Fixtures/kafka_python_encodings.py /tmp/samples.txt
"""

import importlib
import io
import os
import pkgutil
import sys

import kafka.protocol
from kafka.protocol.api_message import ApiMessage


def kafka_python_classes():
    classes = {}
    for info in pkgutil.walk_packages(kafka.protocol.__path__, "kafka.protocol."):
        try:
            module = importlib.import_module(info.name)
        except Exception:
            continue
        for name, value in vars(module).items():
            schema = getattr(value, "_json", None) if isinstance(value, type) else None
            if isinstance(schema, dict) and schema.get("name") == name:
                classes[name] = value
    return classes


def reencode(cls, name, version, data):
    if name in ("RequestHeader", "ResponseHeader"):
        flexible = version == cls._flexible_versions[0]
        return cls.decode(io.BytesIO(data), flexible=flexible).encode(flexible=flexible)
    if name.startswith("ConsumerProtocol"):
        return cls.decode(data, version=version, header=False).encode(version=version, header=False)
    # kafka-python's ApiVersionsResponse.decode reads any body with an error code as v0.
    decode = ApiMessage.decode.__func__ if name == "ApiVersionsResponse" else cls.decode.__func__
    message = decode(cls, data, version=version)
    if not hasattr(message, "_header"):
        message._header = None
    return message.encode(version=version)


def main():
    classes = kafka_python_classes()
    rows, failures = [], 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            name, version = parts[0], int(parts[1])
            data = bytes.fromhex(parts[2]) if len(parts) > 2 else b""
            again = bytes(reencode(classes[name], name, version, data))
            if again != data:
                failures += 1
                print(f"{name} v{version}: kafka-python re-encodes differently", file=sys.stderr)
            rows.append(f'    ("{name}", {version}, "{again.hex()}"),')
    if failures:
        sys.exit(f"{failures} encodings differ")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "KafkaPythonEncodings.swift")
    with open(out, "w", encoding="utf-8") as f:
        f.write("// Written by Tests/KafkaProtocolTests/Fixtures/kafka_python_encodings.py: kafka-python 3.0.12's\n")
        f.write("// encoding of every generated sample(version:unknownTags: false). Do not edit.\n\n")
        f.write("let kafkaPythonEncodings: [(message: String, version: Int16, hex: String)] = [\n")
        f.write("\n".join(rows) + "\n]\n")
    print(f"wrote {len(rows)} encodings to {out}")


if __name__ == "__main__":
    main()
