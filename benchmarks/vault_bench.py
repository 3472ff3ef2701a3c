"""Vault latency: seal/open of one blob, and get/update_tokens of one credential among many.

    python benchmarks/vault_bench.py            # 1,000 credentials
    python benchmarks/vault_bench.py --smoke    # 20 credentials, for CI

Prints median and p99 in microseconds. update_tokens includes the fsync of a durable commit
(WAL, synchronous=FULL), so its figure depends mostly on the disk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, open_blob, seal_blob


def _timed(action: Callable[[int], object], runs: int) -> list[float]:
    samples = []
    for n in range(runs):
        started = time.perf_counter()
        action(n)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{name:28} {len(samples):>7} {statistics.median(ordered):>12.1f} {p99:>12.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    count, runs = (20, 50) if args.smoke else (1000, 2000)
    key = os.urandom(32)
    token = b"t" * 1200  # about the size of an Exact access token
    blob = seal_blob("dk-00000000", key, token, vault_id="v", record="r", field="access_token")
    rows = [
        _row(
            "seal (encrypt) 1.2 KB",
            _timed(
                lambda _: seal_blob("dk-00000000", key, token, vault_id="v", record="r", field="f"),
                runs,
            ),
        ),
        _row(
            "open (decrypt) 1.2 KB",
            _timed(
                lambda _: open_blob(
                    blob,
                    lambda _kid: key,
                    vault_id="v",
                    record="r",
                    field="access_token",
                    subject={},
                ),
                runs,
            ),
        ),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        vault = Vault.open(Path(scratch) / "home", keys=KeyRing.from_bytes(os.urandom(32)))
        ids = []
        started = time.perf_counter()
        for n in range(count):
            credential = vault.begin(
                connector_name=f"connection {n}",
                auth_type="oauth2_refresh_token",
                server_url="https://start.exactonline.nl",
                client_id="b81cc4de-d192-400e-bcb4-09254394c52a",
                client_secret=SecretStr(f"client-secret-{n}"),
                refresh_token=SecretStr(f"refresh-{n}"),
            )
            ids.append(credential.id)
        fill = time.perf_counter() - started
        rows.append(_row(f"get (1 of {count})", _timed(lambda n: vault.get(ids[n % count]), runs)))

        def update(n: int) -> None:
            current = vault.get(ids[n % count])
            vault.update_tokens(
                current.id,
                expected_version=current.version,
                access_token=SecretStr(token.decode()),
                refresh_token=SecretStr(f"refresh-{n}"),
                issued_at=float(n),
                expires_at=float(n + 600),
            )

        rows.append(_row("get + update_tokens (CAS)", _timed(update, runs)))
        rotation = _timed(lambda _: vault.rotate_key(), 1)[0]
        vault.close()
    print(f"{'operation':28} {'runs':>7} {'median µs':>12} {'p99 µs':>12}")
    print("\n".join(rows))
    print(
        f"{count} credentials stored in {fill:.2f} s; rotate_key over all: {rotation / 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
