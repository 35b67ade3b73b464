"""The emulator's CA: in the state folder by default, or one shared folder."""

import stat
from concurrent.futures import ThreadPoolExecutor

from emulator.ca import EmulatorCA, ca_dir


def test_the_ca_lives_in_the_state_folder_unless_a_shared_one_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("DEPLOYTEST_EMULATOR_CA_DIR", raising=False)
    assert ca_dir(tmp_path / "state") == tmp_path / "state" / "tls"
    monkeypatch.setenv("DEPLOYTEST_EMULATOR_CA_DIR", str(tmp_path / "shared"))
    assert ca_dir(tmp_path / "state") == tmp_path / "shared"


def test_emulators_creating_one_shared_ca_together_agree_on_it(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        cas = list(pool.map(lambda _: EmulatorCA(tmp_path / "shared"), range(4)))
    certs = {ca.cert_path.read_bytes() for ca in cas}
    assert len(certs) == 1
    # every one loaded the key that matches the certificate on disk
    assert {ca._ca.cert_pem.bytes() for ca in cas} == certs
    assert stat.S_IMODE((tmp_path / "shared" / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o700
