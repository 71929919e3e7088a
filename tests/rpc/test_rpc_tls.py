"""RPC over mutual TLS, with certificates from a CA made for the test (tejido.net.certs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rpc_fixtures import CalcImpl, Calculator, run

import tejido.rpc as rpc
from tejido.net import certs
from tejido.net.tls import TLSConfig


def test_calls_over_mutual_tls_and_a_client_without_a_certificate_is_refused(
    tmp_path: Path,
) -> None:
    certs.init_ca(tmp_path, "test")
    certs.issue(tmp_path, "server")
    certs.issue(tmp_path, "client")
    server_ssl = TLSConfig.from_dir(tmp_path, "server").server_context()
    client_ssl = TLSConfig.from_dir(tmp_path, "client").client_context()
    anonymous_ssl = TLSConfig(tmp_path / "ca.pem", None, None).client_context()

    async def main() -> None:
        async with await rpc.serve(
            "127.0.0.1:0", {Calculator: CalcImpl()}, ssl=server_ssl
        ) as server:
            calc = await rpc.connect(Calculator, server.address, ssl=client_ssl)
            assert await calc.add(20, 22) == 42
            assert [x async for x in calc.count(3)] == [0, 1, 2]
            [peer] = server.peers
            assert peer.address is not None
            await rpc.close(calc)

            async def call_anonymously() -> int:
                anonymous = await rpc.connect(
                    Calculator, server.address, ssl=anonymous_ssl, connect_timeout_s=5
                )
                return await anonymous.add(1, 1)  # TLS 1.3 may only fail at the first read

            with pytest.raises(rpc.Unavailable):
                await call_anonymously()

    run(main())
