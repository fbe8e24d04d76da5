"""The firewall of the stack's ports: the chains, the boot file, and chain names refused."""

from ansible_collections.nasai.stack.plugins.filter.exposure import (chain_name_errors, exposure_chains,
                                                                     iptables_restore_file)


def test_host_mode_guards_input_only_and_lets_loopback_through():
    (table,) = exposure_chains([443, 80], ["192.168.1.7/24"], False)
    assert table["chains"] == {
        "NASAI_EXPOSE": ["-i lo -j RETURN", "-s 192.168.1.0/24 -p tcp -m multiport --dports 80,443 -j RETURN",
                         "-p tcp -m multiport --dports 80,443 -j DROP"],
        "NASAI_EXPOSE_FWD": None}
    assert table["jumps"] == [{"chain": "INPUT", "target": "NASAI_EXPOSE", "match": ""}]


def test_bridge_mode_guards_docker_published_ports_by_the_port_the_client_asked_for():
    (table,) = exposure_chains([443], ["10.0.0.0/8"], True)
    match = "-p tcp -m conntrack --ctstate DNAT --ctorigdstport 443 --ctdir ORIGINAL"
    assert table["chains"]["NASAI_EXPOSE_FWD"] == [f"-s 10.0.0.0/8 {match} -j RETURN", f"{match} -j DROP"]
    assert {"chain": "DOCKER-USER", "target": "NASAI_EXPOSE_FWD", "match": ""} in table["jumps"]


def test_off_or_without_ports_both_chains_are_removed():
    for tables in (exposure_chains([443], ["10.0.0.0/8"], True, enabled=False), exposure_chains([], [], True)):
        assert tables[0]["chains"] == {"NASAI_EXPOSE": None, "NASAI_EXPOSE_FWD": None}
        assert tables[0]["jumps"] == []


def test_boot_file_declares_only_its_chains_and_leaves_dockers_jumps_to_the_unit():
    text = iptables_restore_file(exposure_chains([443], ["10.0.0.0/8"], True), "managed\nby us")
    lines = text.splitlines()
    assert lines[:3] == ["# managed", "# by us", "*filter"]
    assert ":NASAI_EXPOSE - [0:0]" in lines and ":NASAI_EXPOSE_FWD - [0:0]" in lines
    assert "-I INPUT 1 -j NASAI_EXPOSE" in lines and lines[-1] == "COMMIT"
    assert not [line for line in lines if "DOCKER-USER" in line]


def test_chain_names_of_docker_or_builtin_or_malformed_are_refused():
    assert chain_name_errors("NASAI_PROXY", "proxy_transparent_chain") == []
    assert "Docker's chains" in chain_name_errors("DOCKER-USER", "proxy_transparent_chain")[0]
    assert "built-in chain" in chain_name_errors("INPUT", "x")[0]
    assert "1-24 letters" in chain_name_errors("a b", "x")[0]
