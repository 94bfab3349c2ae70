import os
import re

import pytest

from swarmbook import config
from swarmbook.errors import ConfigError
from swarmbook.shell import Masker, Secret, join, quote


def test_join_quotes_every_argument_including_injection():
    assert join(["docker", "network", "create", "a b", "x;rm -rf /"]) == \
        "docker network create 'a b' 'x;rm -rf /'"
    assert quote("$(reboot)") == "'$(reboot)'"


def test_secret_never_renders_and_cannot_be_quoted_into_argv():
    s = Secret("hunter22")
    assert "hunter22" not in repr(s) and "hunter22" not in f"{s}"
    with pytest.raises(TypeError):
        join(["docker", "login", "-p", s])


def test_masker_hides_registered_secrets():
    m = Masker(["tok-123456"])
    m.add(Secret("pw-abc"))
    assert m("join --token tok-123456 pw-abc") == "join --token *** ***"


def test_parse_groups_defaults_and_ports():
    s = config.parse("SSH_USER=ops\nSSH_PORT=2222\nMANAGERS=a, root@b:22\nWORKERS=[fd00::1]:23,c\n", environ={})
    assert [(h.host, h.user, h.port) for h in s.group("nodes")] == [
        ("a", "ops", 2222), ("b", "root", 22), ("fd00::1", "ops", 23), ("c", "ops", 2222)]
    assert s.group("managers")[0].host == "a"
    assert s["DOCKER_INSTALL_METHOD"] == "script"
    assert s.get("DOCKER_INSTALL_METHOD", "distro") == "distro"  # argument beats file/default


def test_all_group_deduplicates_hosts_across_groups():
    s = config.parse("MANAGERS=a\nWORKERS=b\nGITLAB=a\nRUNNERS=c\n", environ={})
    assert [h.host for h in s.group("all")] == ["a", "b", "c"]


def test_environment_beats_file_for_secrets_only():
    s = config.parse("REGISTRY_PASSWORD=file\nREGISTRY_USER=u\n",
                     environ={"REGISTRY_PASSWORD": "env-pw", "REGISTRY_USER": "ignored"})
    assert s["REGISTRY_PASSWORD"].reveal() == "env-pw"
    assert s["REGISTRY_USER"] == "u"


@pytest.mark.parametrize("text, message", [
    ("MANAGERS=a\nFOO=1\n", "line 2: unknown key FOO"),
    ("MANAGERS=a\n\nthis is not a line\n", "line 3: cannot parse"),
    ("SSH_PORT=0\n", "SSH_PORT: port '0'"),
    ("SSH_PORT=abc\n", "SSH_PORT: port 'abc'"),
    ("MANAGERS=host:99999\n", "port '99999'"),
    ("MANAGERS=bad_host!\n", "is not [user@]host[:port]"),
    ("MANAGERS=Bad User@h\n", "bad user name 'Bad User'"),
    ("NETWORK_SUBNET=10.0.0.0/33\n", "not a CIDR"),
    ("DOCKER_INSTALL_METHOD=pip\n", "not one of script, distro"),
    ("SSH_CONNECT_TIMEOUT=soon\n", "not a whole number"),
    ("MANAGERS\n", "MANAGERS has no '=value'"),
])
def test_bad_hosts_env_lines_name_line_and_problem(text, message):
    with pytest.raises(ConfigError) as exc:
        config.parse(text, environ={})
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_group_is_refused():
    with pytest.raises(ConfigError, match="unknown group 'databases'"):
        config.parse("", environ={}).group("databases")


def test_load_missing_file_and_unreadable_key(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(str(tmp_path / "nope.env"))
    f = tmp_path / "h.env"
    f.write_text(f"MANAGERS=a\nSSH_KEY={tmp_path}/missing_key\n")
    os.chmod(f, 0o600)
    with pytest.raises(ConfigError, match="SSH_KEY .* does not exist"):
        config.load(str(f))


def test_world_readable_hosts_file_warns(tmp_path):
    f = tmp_path / "h.env"
    f.write_text("MANAGERS=a\n")
    os.chmod(f, 0o644)
    assert "chmod 600" in config.load(str(f)).warnings[0]
    os.chmod(f, 0o600)
    assert config.load(str(f)).warnings == ()


def test_env_path_precedence(tmp_path):
    assert str(config.env_path("x.env", {"SWARMBOOK_ENV": "y.env"})) == "x.env"
    assert str(config.env_path(None, {"SWARMBOOK_ENV": "y.env"})) == "y.env"
    assert str(config.env_path(None, {})) == "hosts.env"


def _task_names() -> set[str]:
    import swarmbook.tasks

    names: set[str] = set()

    def walk(coll, prefix=""):
        names.update(prefix + t for t in coll.tasks)
        for n, c in coll.collections.items():
            walk(c, prefix + n + ".")

    walk(swarmbook.tasks.ns)
    return names


def _example_docs() -> dict[str, str]:
    """KEY -> the comment lines right above it (above its group, when keys share one comment)."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "hosts.env.example")
    lines = open(path).read().splitlines()
    key_line = re.compile(r"^#?([A-Z][A-Z0-9_]+)=")
    docs = {}
    for i, line in enumerate(lines):
        m = key_line.match(line)
        if not m:
            continue
        j = i - 1
        while j >= 0 and key_line.match(lines[j]):
            j -= 1
        text = []
        while j >= 0 and lines[j].startswith("#") and not key_line.match(lines[j]):
            text.append(lines[j].lstrip("# "))
            j -= 1
        docs[m.group(1)] = " ".join(reversed(text))
    return docs


def test_example_documents_every_key_with_its_default_and_the_task_that_reads_it():
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "hosts.env.example")).read()
    docs = _example_docs()
    assert set(config.KEYS) <= set(docs), set(config.KEYS) - set(docs)
    names = _task_names()
    for key in config.KEYS:
        doc = docs[key]
        names_a_task = (any(re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w-])", doc) for n in names)
                        or re.search(r"every (changing )?task|[a-z]+\.\*", doc, re.I))
        assert names_a_task, f"hosts.env.example: {key}: no task named in {doc!r}"
        assert re.search(r"default", doc, re.I), f"hosts.env.example: {key}: no default in {doc!r}"
    # and the example itself parses (commented keys are fine)
    config.parse(text, environ={})




def test_ssh_known_hosts_defaults_to_the_users_file_and_the_environment_beats_the_file():
    assert config.parse("", environ={})["SSH_KNOWN_HOSTS"] == "~/.ssh/known_hosts"
    in_file = config.parse("SSH_KNOWN_HOSTS=/srv/known\n", environ={})
    assert in_file["SSH_KNOWN_HOSTS"] == "/srv/known"
    from_env = config.parse("SSH_KNOWN_HOSTS=/srv/known\n", environ={"SSH_KNOWN_HOSTS": "~/lab/known"})
    assert from_env["SSH_KNOWN_HOSTS"] == os.path.expanduser("~/lab/known")
    assert config.parse("", environ={"SSH_PORT": "2222"})["SSH_PORT"] == 22  # only keys marked so
