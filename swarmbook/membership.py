"""Pure planning of swarm membership: the nodes a manager reports plus the roles hosts.env wants
-> the ordered actions that converge one to the other without losing quorum (no I/O here).

Rules (Docker's swarm admin guide: a swarm of N managers needs a majority, N//2 + 1, of them
reachable to change anything, and tolerates (N-1)//2 lost):
- promote before demote, so a swap of roles never dips the manager count;
- demote unreachable managers first (that shrinks N without losing a reachable vote), then
  reachable ones, the leader last; refuse a demotion that would leave fewer than a majority of
  the remaining managers reachable, or no manager at all; never promote a node that is down;
- an even number of wanted managers is a warning (it tolerates no more failures than one fewer);
- a node hosts.env does not list is reported; with ``prune`` it is demoted first (if a manager),
  then drained, told to leave and removed;
- a stale entry (down, left behind by a listed host that rejoined or is about to) still counts
  against quorum while it is a raft member: it is demoted (unreachable, so first) and forgotten
  (one outside raft, an old manager after --force-new-cluster, is only forgotten);
  its labels go first to the host's live node where that node lacks them (a host that lost its
  swarm state, e.g. every manager after a restore, rejoins as a new node: its labels, which
  placement constraints read, would otherwise be forgotten with the old entry).

Identity: a host that answered SSH is its own node (the NodeID its engine reports), never an old
entry with its address: another entry with that address is stale, even while the managers still
call it ready (they notice a node that left with --force only after a heartbeat timeout). A host that did not answer is matched by address (Status.Addr or
ManagerStatus.Addr) or hostname, a live entry before a down one; two candidates is ambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .nodecmd import Node


def majority(managers: int) -> int:
    return managers // 2 + 1


@dataclass(frozen=True)
class Wanted:
    """One hosts.env entry: its name (as listed), wanted role, and what the host said of itself."""

    name: str
    role: str             # manager | worker
    answered: bool = False  # its engine answered, in swarm state inactive or active
    node_id: str = ""       # the NodeID it reported ("" when it is in no swarm)


@dataclass(frozen=True)
class Action:
    kind: str   # promote | demote | label (a stale entry's labels) | forget (a stale entry) | drain | leave | remove
    name: str   # the hosts.env entry, or an unlisted node's hostname
    node: Node
    reason: str
    labels: tuple[tuple[str, str], ...] = ()  # label: the labels to add to ``node``


@dataclass
class Plan:
    matched: dict[str, Node] = field(default_factory=dict)  # entry -> its node
    joining: list[Wanted] = field(default_factory=list)      # entries in no swarm yet
    actions: list[Action] = field(default_factory=list)
    unlisted: list[Node] = field(default_factory=list)
    stale: list[Node] = field(default_factory=list)          # down entries a listed host left behind
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)        # refusals: nothing should change

    def of(self, *kinds: str) -> list[Action]:
        return [a for a in self.actions if a.kind in kinds]


def candidates(name: str, nodes: Iterable[Node]) -> list[Node]:
    """Nodes that ``name`` (an address or hostname) may be, live ones first."""
    found = [n for n in nodes if name in n.addrs or name.lower() == n.hostname.lower()]
    return sorted(found, key=lambda n: not n.up)


def find(name: str, nodes: list[Node]) -> tuple[Node | None, str]:
    """The node ``name`` (address, hostname or node ID) means, or (None, why not)."""
    by_id = [n for n in nodes if n.id == name]
    if by_id:
        return by_id[0], ""
    found = candidates(name, nodes)
    live = [n for n in found if n.up]
    if len(live) == 1 or (not live and len(found) == 1):
        return (live or found)[0], ""
    if not found:
        return None, f"no swarm node {name} (nodes: {', '.join(sorted(n.label for n in nodes)) or 'none'})"
    return None, f"{name} is ambiguous: nodes {', '.join(f'{n.id[:12]} ({n.label} {n.state})' for n in found)}"


def _match(wanted: list[Wanted], nodes: list[Node], plan: Plan) -> None:
    by_id = {n.id: n for n in nodes}
    owner: dict[str, str] = {}
    for w in wanted:
        if w.answered:
            node = by_id.get(w.node_id) if w.node_id else None
            if node is None:
                plan.joining.append(w)  # in no swarm (or another one: the join step says so)
                continue
        else:
            node, why = find(w.name, nodes)
            if node is None:
                if why.startswith("no swarm node"):
                    plan.joining.append(w)  # not answering and not in the swarm: the join step fails it
                else:
                    plan.problems.append(why)
                continue
        if node.id in owner:
            plan.problems.append(f"{owner[node.id]} and {w.name} are the same swarm node ({node.label})")
            continue
        owner[node.id] = w.name
        plan.matched[w.name] = node
    names = {w.name.lower() for w in wanted}
    answered = {w.name for w in wanted if w.answered}  # the engine at that address said which node it is
    for n in nodes:
        if n.id in owner:
            continue
        if n.addrs & answered and (n.reachable or n.leader):
            plan.problems.append(f"node {n.label} is live at {', '.join(sorted(n.addrs & answered))}, whose engine "
                                 "says it is another node or none: check what answers at that address")
            continue
        if not n.up and any(n.hostname == m.hostname or n.addrs & m.addrs for m in plan.matched.values()) \
                or not n.up and (n.addrs | {n.hostname.lower()}) & names or n.addrs & answered:
            plan.stale.append(n)
        else:
            plan.unlisted.append(n)


def plan(nodes: list[Node], wanted: list[Wanted], *, prune: bool = False, joiner_votes: bool = True) -> Plan:
    """The ordered actions that make ``nodes`` what ``wanted`` lists (see the module's rules).

    ``joiner_votes``: count hosts about to join as managers as votes (before the joins; after
    them, a host still out of the swarm failed to join and counts for nothing)."""
    p = Plan()
    want_managers = [w for w in wanted if w.role == "manager"]
    if want_managers and len(want_managers) % 2 == 0:
        k = len(want_managers)
        p.warnings.append(f"{k} managers: an even number adds no fault tolerance (use {k - 1} or {k + 1})")
    _match(wanted, nodes, p)
    managers = {n.id for n in nodes if n.member}  # raft's quorum counts its members
    reachable = {n.id for n in nodes if n.reachable}
    if managers and len(reachable) < majority(len(managers)):
        p.problems.append(f"the swarm has no quorum: {len(reachable)} of {len(managers)} managers reachable "
                          f"(a majority is {majority(len(managers))}); bring managers back first")
        return p
    for w in p.joining:  # a host joining as a manager is one more reachable vote once it has joined
        if w.role == "manager" and w.answered and joiner_votes:
            managers.add(f"join:{w.name}")
            reachable.add(f"join:{w.name}")
    role = {w.name: w.role for w in wanted}
    for name, node in p.matched.items():
        if role[name] == "manager" and not node.is_manager:
            if not node.up:
                p.problems.append(f"cannot promote {name}: node {node.label} is {node.state or 'not ready'}")
                continue
            p.actions.append(Action("promote", name, node, "listed in MANAGERS, is a worker"))
            managers.add(node.id)
            reachable.add(node.id)
    demote = [(name, node, "listed in WORKERS, is a manager") for name, node in p.matched.items()
              if role[name] == "worker" and node.is_manager]
    stale = "left behind by this host's earlier membership ({})"
    # a stale manager outside raft (dropped by --force-new-cluster) cannot be demoted (Docker:
    # "can't find manager in raft memberlist") and needs not be: it is removed as it is
    demote += [(n.where, n, stale.format(n.id[:12])) for n in p.stale if n.member]
    if prune:
        demote += [(n.where, n, "not in hosts.env (pruned: demoted first)") for n in p.unlisted if n.is_manager]
    for name, node, why in sorted(demote, key=lambda d: (d[1].reachable, d[1].leader)):
        refusal = quorum_refusal(name, node.id, managers, reachable)
        if refusal:
            p.problems.append(refusal)
        else:
            p.actions.append(Action("demote", name, node, why))
            managers, reachable = managers - {node.id}, reachable - {node.id}
    p.actions += carried_labels(p)
    p.actions += [Action("forget", n.where, n, stale.format(n.id[:12])) for n in p.stale]
    if not prune:
        for n in p.unlisted:
            p.warnings.append(f"node {n.label} ({', '.join(sorted(n.addrs)) or 'no address'}, {n.role}, {n.state}) "
                              "is in the swarm but not in MANAGERS/WORKERS: swarm.init --prune --yes removes it")
        return p
    pruned = {n.id for n in p.unlisted}
    if p.unlisted and not any(n.up and n.availability == "active" and n.id not in pruned for n in nodes) \
            and not p.joining:
        p.problems.append("pruning would leave no active node for the tasks: "
                          f"{', '.join(n.label for n in p.unlisted)} run the last ones")
    for n in p.unlisted:
        p.actions.append(Action("drain", n.where, n, "not in hosts.env: its tasks move first"))
        if n.up:
            p.actions.append(Action("leave", n.where, n, "not in hosts.env"))
        p.actions.append(Action("remove", n.where, n, "not in hosts.env"))
    return p


def carried_labels(p: Plan) -> list[Action]:
    """A stale entry's labels onto the live node of the same host (hostname or address), only
    the keys that node lacks: nothing it has is overwritten."""
    out = []
    for name, live in p.matched.items():
        have = dict(live.labels)
        add: dict[str, str] = {}
        for n in p.stale:
            if n.id != live.id and (n.hostname == live.hostname or n.addrs & live.addrs):
                add.update({k: v for k, v in n.labels if k not in have and k not in add})
        if add and live.up:
            out.append(Action("label", name, live, "from its stale entry: " + ", ".join(f"{k}={v}" for k, v in
                                                                                      sorted(add.items())),
                              tuple(sorted(add.items()))))
    return out


def quorum_refusal(name: str, node_id: str, managers: set[str], reachable: set[str]) -> str:
    """Why demoting ``node_id`` from ``managers`` (IDs; ``reachable`` of them answer) is unsafe, or ""."""
    left, votes = managers - {node_id}, reachable - {node_id}
    if not left:
        return f"cannot demote {name}: it is the last manager"
    if len(votes) < majority(len(left)):
        return (f"demoting {name} would leave {len(votes)} of {len(left)} managers reachable "
                f"(a majority is {majority(len(left))}): bring the others back first")
    return ""


def demote_refusal(name: str, node_id: str, nodes: list[Node]) -> str:
    """:func:`quorum_refusal` on the nodes as a manager reports them now."""
    return quorum_refusal(name, node_id, {n.id for n in nodes if n.member}, {n.id for n in nodes if n.reachable})


def drain_refusal(nodes: list[Node], target: Node) -> str:
    """Why draining ``target`` (for maintenance: it may go down next) is refused; "" when it is safe."""
    down = [n for n in nodes if n.is_manager and n.id != target.id and not n.reachable]
    if down:
        return (f"manager {', '.join(n.label for n in down)} is already down ({', '.join(n.reachability or n.state for n in down)}): "
                f"bring it back before draining {target.label}")
    if target.is_manager:
        managers = [n for n in nodes if n.is_manager]
        votes = [n for n in managers if n.reachable and n.id != target.id]
        if len(votes) < majority(len(managers)):
            return (f"{target.label} is a manager: with it down {len(votes)} of {len(managers)} managers would be "
                    f"reachable, below the majority of {majority(len(managers))} (promote more managers first)")
    others = [n for n in nodes if n.id != target.id and n.up and n.availability == "active"]
    if not others:
        return f"{target.label} is the last active node: its tasks would have nowhere to go"
    return ""
