"""Lab instances (SWARMBOOK_LAB_INSTANCE): k > 0 gets its own names, subnet, state dir; 0 is unchanged."""

from pathlib import Path

import pytest

from swarmbook.lab import builders, layout, platform
from swarmbook.lab.layout import LabError


@pytest.fixture
def k2(monkeypatch):
    monkeypatch.setenv("SWARMBOOK_LAB_INSTANCE", "2")
    monkeypatch.delenv("SWARMBOOK_LAB_DIR", raising=False)


def test_instance_zero_is_exactly_the_old_lab(monkeypatch):
    monkeypatch.delenv("SWARMBOOK_LAB_INSTANCE", raising=False)
    assert (layout.network(), layout.subnet(), layout.gateway()) == ("swarmbook-lab", "172.29.100.0/24", "172.29.100.1")
    assert layout.host(1) == layout.LabHost("swarmbook-lab-h1", "h1", "172.29.100.11")
    monkeypatch.delenv("SWARMBOOK_LAB_DIR", raising=False)
    assert layout.state_dir() == layout.REPO_ROOT / ".lab"


def test_instance_k_names_addresses_and_state_dir(k2):
    assert (layout.network(), layout.subnet(), layout.gateway()) == ("swarmbook-lab2", "172.29.102.0/24", "172.29.102.1")
    assert [h.name for h in layout.hosts(2)] == ["swarmbook-lab2-h1", "swarmbook-lab2-h2"]
    assert layout.host(3).addr == "172.29.102.13"
    assert layout.state_dir() == layout.REPO_ROOT / ".lab2"
    assert layout.data_dir(layout.state_dir()) != layout.data_dir(layout.REPO_ROOT / ".lab")


def test_instance_k_builders(k2):
    state = Path("/abs/.lab2")
    argv = builders.host_create_argv(layout.host(1), Path("/d"), state)
    pairs = list(zip(argv, argv[1:]))
    assert ("--network", "swarmbook-lab2") in pairs and ("--ip", "172.29.102.11") in pairs
    assert ("--add-host", "registry.lab:172.29.102.1") in pairs
    net = builders.network_create_argv(state)
    assert net[-1] == "swarmbook-lab2" and "com.docker.network.bridge.name=swarmbook-lab2" in net
    assert ("--subnet", "172.29.102.0/24") in zip(net, net[1:])
    cfg = builders.registry_config_text(port=5000, storage=Path("/s"), cert=Path("/c"), key=Path("/k"), secret="x")
    assert 'addr: "172.29.102.1:5000"' in cfg
    assert "IP:172.29.102.1" in builders.server_ext_text()


def test_host_names_are_matched_per_instance(k2):
    assert layout.is_host_name("swarmbook-lab2-h3")
    assert not layout.is_host_name("swarmbook-lab-h3") and not layout.is_host_name("swarmbook-lab21-h1")
    assert layout.is_host_name("swarmbook-lab-h3", 0) and not layout.is_host_name("swarmbook-lab2-h1", 0)


@pytest.mark.parametrize("raw", ["x", "-1", "100"])
def test_bad_instance_refused(monkeypatch, raw):
    monkeypatch.setenv("SWARMBOOK_LAB_INSTANCE", raw)
    with pytest.raises(LabError, match="SWARMBOOK_LAB_INSTANCE"):
        layout.network()


def test_hosts_env_platform_section_parses():
    from swarmbook import config

    text = builders.hosts_env_text(layout.hosts(2, 0), Path("/k"), "pw", Path("/ca"),
                                   services=platform.services_env("s3"))
    s = config.parse(text, environ={})
    assert s["MYSQL_IMAGE"] == "mariadb:10.11" and s["KONG_PG_PASSWORD"].reveal() == "s3-pg"
    assert s["RUNNER_REPO_URL"] == "http://registry.lab:5080/runner/gitlab-runner"
    assert builders.hosts_env_text(layout.hosts(2, 0), Path("/k"), "pw", Path("/ca")) in text


def test_platform_images_are_named_and_cached_by_recipe():
    ctx = platform.contexts()
    assert {"library/postgres:15", "library/mariadb:10.11", "library/nginx:latest"} <= set(ctx)
    nginx = ctx["library/nginx:latest"]["Dockerfile"]  # real Debian nginx, the official image's shape
    assert nginx.startswith("FROM swarmbook-lab-seed/debian:bookworm\n") and "--no-install-recommends nginx;" in nginx
    assert nginx.rstrip().endswith('CMD ["nginx", "-g", "daemon off;"]') and "swarmbook.standin" not in nginx
    dash = ctx["swarmbook-standin/kong-dashboard:latest"]  # node + a CLI where the real image has it
    assert "--no-install-recommends nodejs;" in dash["Dockerfile"] and "KONG_DASHBOARD_AUTH" not in dash["kong-dashboard.js"]
    assert "COPY kong-dashboard.js /app/bin/kong-dashboard.js\n" in dash["Dockerfile"]
    assert 'WORKDIR /app\n' in dash["Dockerfile"] and 'ENTRYPOINT ["./docker/entrypoint.sh"]' in dash["Dockerfile"]
    standins = [k for k in ctx if not k.startswith("library/")]
    assert standins and all(k.startswith("swarmbook-standin/") for k in standins)
    assert all("swarmbook.standin=true" in ctx[k]["Dockerfile"] for k in standins)
    assert platform.recipe("swarmbook-standin/kong:latest") != platform.recipe("swarmbook-standin/kong:next")
    assert platform.base_ref().startswith("swarmbook-lab-seed/platform-base:")
    assert "Version: 0.0.0-swarmbook-standin" in platform.runner_control()
