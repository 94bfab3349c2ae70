"""The membership planner, pure: the nodes a manager reports + the roles hosts.env wants ->
ordered actions, warnings and refusals (swarmbook.membership)."""

from swarmbook.membership import Wanted, drain_refusal, find, majority, plan
from swarmbook.nodecmd import Node


def node(i, role="worker", *, state="ready", reach=None, leader=False, avail="active", host=None, addr=None):
    manager = role == "manager"
    return Node(id=f"n{i}", hostname=host or f"h{i}", addr=addr or f"10.0.0.{i}", role=role, availability=avail,
                state=state, reachability=(reach or "reachable") if manager else "",
                manager_addr=f"10.0.0.{i}" if manager else "", leader=leader)


def want(i, role, *, answered=True, node_id=None):
    return Wanted(f"10.0.0.{i}", role, answered=answered, node_id=f"n{i}" if node_id is None else node_id)


def steps(p):
    return [(a.kind, a.name) for a in p.actions]


def test_majority():
    assert [majority(n) for n in (1, 2, 3, 4, 5, 7)] == [1, 2, 2, 3, 3, 4]


def test_converged_cluster_needs_nothing():
    nodes = [node(1, "manager", leader=True), node(2), node(3)]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "worker")])
    assert p.actions == [] and p.problems == [] and p.warnings == [] and p.unlisted == []
    assert {k: v.id for k, v in p.matched.items()} == {"10.0.0.1": "n1", "10.0.0.2": "n2", "10.0.0.3": "n3"}


def test_role_drift_demotes_both_listed_workers():
    """The measured misreport: h2 and h3 listed as WORKERS while both were managers."""
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "worker")])
    assert steps(p) == [("demote", "10.0.0.2"), ("demote", "10.0.0.3")] and p.problems == []


def test_promote_before_demote():
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3)]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "manager")])
    assert steps(p) == [("promote", "10.0.0.3"), ("demote", "10.0.0.2")]
    assert p.warnings == ["2 managers: an even number adds no fault tolerance (use 1 or 3)"]


def test_even_manager_count_warns():
    nodes = [node(1, "manager", leader=True), node(2)]
    p = plan(nodes, [want(1, "manager"), want(2, "manager")])
    assert steps(p) == [("promote", "10.0.0.2")] and "even number" in p.warnings[0]


def test_quorum_guard_refuses_a_demotion_that_leaves_a_minority_reachable():
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager", reach="unreachable", state="down")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "manager", answered=False)])
    assert steps(p) == []
    assert p.problems == ["demoting 10.0.0.2 would leave 1 of 2 managers reachable (a majority is 2): "
                          "bring the others back first"]


def test_unreachable_managers_are_demoted_first_so_both_demotions_stay_safe():
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager", reach="unreachable", state="down")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "worker", answered=False)])
    assert steps(p) == [("demote", "10.0.0.3"), ("demote", "10.0.0.2")] and p.problems == []


def test_a_swarm_without_quorum_is_refused_before_anything():
    nodes = [node(1, "manager", leader=True), node(2, "manager", reach="unreachable"),
             node(3, "manager", reach="unreachable")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "worker")])
    assert steps(p) == [] and "no quorum: 1 of 3 managers reachable" in p.problems[0]


def test_a_down_node_is_never_promoted():
    nodes = [node(1, "manager", leader=True), node(2, state="down")]
    p = plan(nodes, [want(1, "manager"), want(2, "manager", answered=False)])
    assert steps(p) == [] and p.problems == ["cannot promote 10.0.0.2: node h2 is down"]


def test_the_last_manager_is_never_demoted():
    nodes = [node(1, "manager", leader=True)]
    p = plan(nodes, [want(1, "worker")])
    assert p.problems == ["cannot demote 10.0.0.1: it is the last manager"]


def test_joining_managers_count_as_votes():
    """A 1-manager swarm that gets two new managers may demote the old one (3 -> 2 reachable of 2)."""
    nodes = [node(1, "manager", leader=True)]
    p = plan(nodes, [Wanted("10.0.0.8", "manager", answered=True), Wanted("10.0.0.9", "manager", answered=True),
                     want(1, "worker")])
    assert [w.name for w in p.joining] == ["10.0.0.8", "10.0.0.9"] and steps(p) == [("demote", "10.0.0.1")]


def test_unlisted_node_is_reported_not_touched():
    nodes = [node(1, "manager", leader=True), node(2), node(4, host="old-box")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker")])
    assert steps(p) == [] and [n.id for n in p.unlisted] == ["n4"]
    assert p.warnings == ["node old-box (10.0.0.4, worker, ready) is in the swarm but not in MANAGERS/WORKERS: "
                          "swarm.init --prune --yes removes it"]


def test_prune_demotes_first_then_drains_leaves_removes():
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager"), node(4), node(5, state="down")]
    p = plan(nodes, [want(1, "manager"), want(2, "manager"), want(4, "worker")], prune=True)
    assert steps(p) == [("demote", "10.0.0.3"),
                        ("drain", "10.0.0.3"), ("leave", "10.0.0.3"), ("remove", "10.0.0.3"),
                        ("drain", "10.0.0.5"), ("remove", "10.0.0.5")]  # a down node cannot leave itself
    assert "2 managers" in p.warnings[0]


def test_prune_keeps_quorum_too():
    nodes = [node(1, "manager", leader=True), node(2, "manager", reach="unreachable", state="down"), node(3, "manager")]
    p = plan(nodes, [want(1, "manager"), want(2, "manager", answered=False)], prune=True)
    assert p.problems == ["demoting 10.0.0.3 would leave 1 of 2 managers reachable (a majority is 2): "
                          "bring the others back first"]


def test_prune_refuses_to_remove_the_nodes_that_run_the_last_tasks():
    nodes = [node(1, "manager", leader=True, avail="drain"), node(2)]
    p = plan(nodes, [want(1, "manager")], prune=True)
    assert "pruning would leave no active node" in p.problems[0]


def test_a_host_that_answered_is_its_own_node_never_an_old_entry_with_its_address():
    """h2 left (its old entry is Down) and is in no swarm now: it joins; the old entry is stale, not unlisted."""
    nodes = [node(1, "manager", leader=True), node(2, state="down")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker", node_id="")], prune=True)
    assert [w.name for w in p.joining] == ["10.0.0.2"] and [n.id for n in p.stale] == ["n2"]
    assert p.unlisted == [] and steps(p) == [("forget", "10.0.0.2")]


def test_a_stale_manager_entry_is_demoted_first_so_it_does_not_block_a_demotion():
    """Measured on the lab: h3 left with --force while a manager and is in no swarm now; its old
    entry (down, unreachable) still counts as a manager, so demoting h2 looked like 1 of 2."""
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager", state="down", reach="unreachable")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "worker", node_id="")])
    assert p.problems == [] and [w.name for w in p.joining] == ["10.0.0.3"]
    assert steps(p) == [("demote", "10.0.0.3"), ("demote", "10.0.0.2"), ("forget", "10.0.0.3")]
    assert "left behind by this host's earlier membership" in p.actions[0].reason


def test_a_host_that_did_not_answer_is_matched_by_address_or_hostname():
    nodes = [node(1, "manager", leader=True), node(2, addr="192.168.9.2")]
    p = plan(nodes, [want(1, "manager"), Wanted("h2", "worker")])
    assert p.matched["h2"].id == "n2" and p.unlisted == []
    live_and_dead = [node(1, "manager", leader=True), node(2, state="down"), Node("n2b", "h2", "10.0.0.2", "worker",
                                                                                 "active", "ready")]
    p = plan(live_and_dead, [want(1, "manager"), Wanted("10.0.0.2", "worker")])
    assert p.matched["10.0.0.2"].id == "n2b" and [n.id for n in p.stale] == ["n2"]


def test_ambiguous_names_are_refused():
    nodes = [node(1, "manager", leader=True), node(2, host="app"), node(3, host="app")]
    p = plan(nodes, [want(1, "manager"), Wanted("app", "worker")])
    assert p.problems and "app is ambiguous" in p.problems[0]


def test_two_entries_for_one_node_are_refused():
    nodes = [node(1, "manager", leader=True), node(2)]
    p = plan(nodes, [want(1, "manager"), Wanted("10.0.0.2", "worker"), Wanted("h2", "worker")])
    assert p.problems == ["10.0.0.2 and h2 are the same swarm node (h2)"]


def test_find_by_id_address_hostname():
    nodes = [node(1, "manager", leader=True), node(2)]
    assert find("n2", nodes)[0].id == find("10.0.0.2", nodes)[0].id == find("H2", nodes)[0].id == "n2"
    assert find("h9", nodes) == (None, "no swarm node h9 (nodes: h1, h2)")


# --- drain refusals ---------------------------------------------------------------------------

def test_drain_a_worker_is_fine():
    nodes = [node(1, "manager", leader=True), node(2), node(3)]
    assert drain_refusal(nodes, nodes[1]) == ""


def test_drain_refused_when_a_manager_is_already_down():
    nodes = [node(1, "manager", leader=True), node(2, "manager", reach="unreachable", state="down"),
             node(3, "manager"), node(4)]
    assert drain_refusal(nodes, nodes[3]) == "manager h2 is already down (unreachable): bring it back before draining h4"


def test_drain_refused_when_the_managers_would_fall_below_quorum():
    single = [node(1, "manager", leader=True), node(2)]
    assert "h1 is a manager: with it down 0 of 1 managers would be reachable, below the majority of 1" \
        in drain_refusal(single, single[0])
    two = [node(1, "manager", leader=True), node(2, "manager"), node(3)]
    assert "1 of 2 managers" in drain_refusal(two, two[1])
    three = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager")]
    assert drain_refusal(three, three[2]) == ""  # three managers tolerate one down


def test_drain_refused_for_the_last_active_node():
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager"), node(4, avail="drain")]
    nodes[0] = node(1, "manager", leader=True, avail="drain")
    nodes[1] = node(2, "manager", avail="drain")
    assert drain_refusal(nodes, nodes[2]) == "h3 is the last active node: its tasks would have nowhere to go"


def test_an_entry_at_the_address_of_a_host_that_says_it_is_another_node_is_stale_even_if_ready():
    """Right after `docker swarm leave --force` the managers still list the node as ready (unreachable)."""
    nodes = [node(1, "manager", leader=True), node(2, "manager"), node(3, "manager", reach="unreachable")]
    p = plan(nodes, [want(1, "manager"), want(2, "worker"), want(3, "worker", node_id="")])
    assert p.unlisted == [] and [n.id for n in p.stale] == ["n3"] and p.problems == []
    assert steps(p) == [("demote", "10.0.0.3"), ("demote", "10.0.0.2"), ("forget", "10.0.0.3")]


def test_a_live_manager_is_never_stale_even_if_a_host_at_its_address_claims_another_id():
    """Belt and braces: the leader (or any reachable manager) answers for itself; never demote or forget it."""
    nodes = [node(1, "manager", leader=True), node(2)]
    p = plan(nodes, [want(1, "manager", node_id=""), want(2, "worker")], prune=True)
    assert p.stale == [] and p.unlisted == [] and not p.of("demote", "forget", "drain", "remove")
    assert p.problems == ["node h1 is live at 10.0.0.1, whose engine says it is another node or none: "
                          "check what answers at that address"]


def test_after_a_restore_the_old_managers_are_outside_raft_and_their_labels_go_to_the_rejoined_nodes():
    """swarm.restore onto h3 (--force-new-cluster), h1 and h2 rejoined as new nodes: their old
    entries keep the manager role but are no raft members any more (no ManagerStatus), so they
    do not count against quorum and are removed without a demotion; their labels go to the new
    node of the same host first."""
    def old(i, labels):
        return Node(id=f"old{i}", hostname=f"h{i}", addr=f"10.0.0.{i}", role="manager", availability="active",
                    state="down", labels=labels)
    nodes = [old(1, (("portainer", "true"),)), old(2, (("drill", "h2"), ("zone", "a"))),
             node(1, "manager"), Node(**{**node(2, "manager").__dict__, "labels": (("zone", "b"),)}),
             node(3, "manager", leader=True)]
    p = plan(nodes, [want(1, "manager"), want(2, "manager"), want(3, "manager")])
    assert p.problems == [], p.problems
    # not demoted first: Docker refuses to demote a manager outside raft ("can't find manager in
    # raft memberlist", measured on 28.5); `node rm --force` takes it as it is
    assert steps(p) == [("label", "10.0.0.1"), ("label", "10.0.0.2"), ("forget", "10.0.0.1"), ("forget", "10.0.0.2")]
    labels = {a.node.id: dict(a.labels) for a in p.of("label")}
    assert labels == {"n1": {"portainer": "true"}, "n2": {"drill": "h2"}}  # zone=b stays: nothing is overwritten


def test_a_manager_outside_raft_is_no_vote():
    """Quorum is raft's: 1 member of 1 is a majority, whatever other entries say their role is."""
    outside = Node(id="old2", hostname="h9", addr="10.0.0.9", role="manager", availability="active", state="down")
    p = plan([node(1, "manager", leader=True), outside], [want(1, "manager")])
    assert p.problems == [] and "no quorum" not in " ".join(p.warnings)
