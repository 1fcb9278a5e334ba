#!/usr/bin/env bash
# Installs what the build and the test suite need beyond the Swift toolchain: the codec libraries
# the broker links (zlib, lz4, zstd, snappy; OpenSSL libcrypto for SCRAM; libpq for the postgres
# engine, and PostgreSQL's server for its tests), kcat, librdkafka and
# chromium (for the console's browser tests) from Debian, openssl (the TLS tests make their
# certificates with it), and the Python clients plus pytest from PyPI. Safe to run again: it only installs
# what is missing.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_missing=()
command -v python3 >/dev/null 2>&1 || apt_missing+=(python3 python3-pip)
command -v kcat >/dev/null 2>&1 || apt_missing+=(kcat)
# The web console's tests load its pages in a real browser, headless.
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
for package in librdkafka-dev zlib1g-dev libsqlite3-dev liblz4-dev libzstd-dev libsnappy-dev libssl-dev libpq-dev postgresql; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$package")
done

if [ "${#apt_missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi

# Versions the interop suite was written and checked against.
py_missing=()
python3 -c "import confluent_kafka" >/dev/null 2>&1 || py_missing+=("confluent-kafka==2.16.1")
python3 -c "import kafka" >/dev/null 2>&1 || py_missing+=("kafka-python==3.0.12")
python3 -c "import pytest" >/dev/null 2>&1 || py_missing+=("pytest==9.0.3")
python3 -c "import aiokafka" >/dev/null 2>&1 || py_missing+=("aiokafka==0.14.0")

if [ "${#py_missing[@]}" -gt 0 ]; then
    echo "install-deps: pip install ${py_missing[*]}"
    # A Debian-managed interpreter refuses plain installs (PEP 668); a pyenv one accepts them.
    if ! python3 -m pip install --quiet --disable-pip-version-check "${py_missing[@]}"; then
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${py_missing[@]}"
    fi
fi

echo "install-deps: kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*/\1/p'), $(python3 -c 'import confluent_kafka, kafka, pytest; print("confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__, "pytest", pytest.__version__)')"
