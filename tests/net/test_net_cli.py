"""`tejido certs` and `tejido node` argument handling: files written, bad input named."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from tejido.cli.main import app

runner = CliRunner()


def test_certs_init_and_issue_write_a_ca_and_a_node_certificate(tmp_path: Path) -> None:
    done = runner.invoke(app, ["certs", "init", str(tmp_path), "--cluster", "prod"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        app, ["certs", "issue", str(tmp_path), "n1", "--ip", "10.0.0.1", "--dns", "db1"]
    )
    assert done.exit_code == 0, done.output
    assert f"wrote {tmp_path / 'n1.pem'}" in done.output
    assert stat.S_IMODE((tmp_path / "n1.key").stat().st_mode) == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "n1.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1", "db1"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)


def test_certs_refuse_to_overwrite_and_name_bad_input(tmp_path: Path) -> None:
    assert runner.invoke(app, ["certs", "init", str(tmp_path)]).exit_code == 0
    again = runner.invoke(app, ["certs", "init", str(tmp_path)])
    assert again.exit_code == 2
    assert "already exists; refusing to overwrite it" in again.output
    bad_ip = runner.invoke(app, ["certs", "issue", str(tmp_path), "n2", "--ip", "300.1.1.1"])
    assert bad_ip.exit_code == 2
    assert "--ip '300.1.1.1' is not an IP address" in bad_ip.output
    no_ca = runner.invoke(app, ["certs", "issue", str(tmp_path / "empty"), "n1"])
    assert no_ca.exit_code == 2
    assert "no CA in" in no_ca.output


def test_node_run_names_bad_arguments_before_starting(tmp_path: Path) -> None:
    base = ["node", "run", "--protocol", "register", "--data", str(tmp_path)]
    cases = [
        (["--id", "x1"], "node id 'x1' must be a non-negative integer"),
        (["--id", "1", "--peer", "2:7000"], "--peer '2:7000' must look like ID=HOST:PORT"),
        (["--id", "1", "--peer", "1=127.0.0.1:7000"], "--peer lists this node's own id 1"),
        (["--id", "1", "--tls-dir", str(tmp_path)], "TLS CA certificate"),
    ]
    for extra, message in cases:
        done = runner.invoke(app, [*base, *extra])
        assert done.exit_code == 2, done.output
        assert message in done.output
    unknown = runner.invoke(app, ["node", "run", "--protocol", "nope", "--id", "1", "--data", "d"])
    assert unknown.exit_code == 2
    assert "unknown protocol 'nope'" in unknown.output


def test_node_call_reports_an_unreachable_node(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # bound, never listening: connecting is refused
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        done = runner.invoke(app, ["node", "call", address, "read", "x"])
    assert done.exit_code == 1
    assert f"cannot reach {address}" in done.output
