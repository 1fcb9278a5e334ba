"""A package that depends on OnceClient resolves neither postgres-nio nor swift-crypto: the
PostgreSQL dedup store is its own package (Packages/OnceStreamsPostgres). swift-nio-ssl is allowed:
OnceClient speaks TLS with it, and it carries its own BoringSSL rather than swift-crypto. Checked on a throwaway
package that depends on this repository by path, as a user's would by URL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from once_broker import REPO_ROOT


def identities(tree: dict) -> set[str]:
    found = {tree["identity"]}
    for child in tree.get("dependencies", []):
        found |= identities(child)
    return found


def show_dependencies(package: Path) -> set[str]:
    result = subprocess.run(
        ["swift", "package", "show-dependencies", "--format", "json"],
        cwd=package, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return identities(json.loads(result.stdout[result.stdout.index("{"):]))


@pytest.mark.timeout_seconds(600)
def test_depending_on_onceclient_resolves_neither_postgres_nio_nor_swift_crypto(tmp_path):
    if shutil.which("swift") is None:
        pytest.skip("no swift toolchain on PATH")
    user = tmp_path / "user"
    (user / "Sources" / "App").mkdir(parents=True)
    (user / "Sources" / "App" / "main.swift").write_text("import OnceClient\n")
    (user / "Package.swift").write_text(f"""// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "app", platforms: [.macOS(.v15)],
    dependencies: [.package(name: "once", path: "{REPO_ROOT}")],
    targets: [.executableTarget(name: "App", dependencies: [.product(name: "OnceClient", package: "once")])]
)
""")
    resolved = show_dependencies(user)
    assert "swift-nio" in resolved, f"the dependency tree was not read: {sorted(resolved)}"
    assert "swift-nio-ssl" in resolved, f"OnceClient's TLS dependency is missing: {sorted(resolved)}"
    assert not resolved & {"postgres-nio", "swift-crypto"}, sorted(resolved)

    # The store's own package does bring postgres-nio, so the check above can tell them apart.
    store = show_dependencies(REPO_ROOT / "Packages" / "OnceStreamsPostgres")
    assert "postgres-nio" in store and "swift-crypto" in store, sorted(store)
