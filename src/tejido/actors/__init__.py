"""Asyncio-native actors: typed references, supervision trees, death watch, timers, stash,
routers and a blocking facade (see docs/actors.md).

The local core delivers by a mailbox append; a system given a node name is also a cluster
node (`tejido.actors.cluster`: membership; `tejido.actors.remote`: remote references,
spawn on a node, `find`, death watch with ``NODE_LOST``), on which virtual actors build.
"""

from tejido.actors.actor import Actor
from tejido.actors.blocking import BlockingActorSystem, BlockingRef
from tejido.actors.cluster import (
    ClusterConfig,
    Delivery,
    Member,
    MemberDown,
    MemberEvent,
    MemberUp,
)
from tejido.actors.errors import (
    ActorError,
    ActorFailed,
    ActorNameTaken,
    ActorStopped,
    AskTimeout,
    InvalidActorName,
    MailboxFull,
    NodeLost,
    NotSerializable,
    RemoteError,
    SpawnFailed,
    UnexpectedReply,
    UnhandledMessage,
    WrongThread,
)
from tejido.actors.mailbox import MailboxConfig, Overflow
from tejido.actors.messages import DeadLetter, DeadLetterReason, Terminated, TerminationCause
from tejido.actors.persistence import (
    FileProvider,
    GrainId,
    MemoryProvider,
    PersistenceError,
    PersistenceProvider,
    StateConflict,
    StoreProvider,
)
from tejido.actors.placement import HashRing, NoMembers
from tejido.actors.ref import ActorPath, ActorRef
from tejido.actors.remote import RemoteActorRef, TypeRegistry
from tejido.actors.routers import Broadcast, ConsistentHash, RandomRouting, RoundRobin, Routing
from tejido.actors.supervision import (
    Backoff,
    Directive,
    Scope,
    SupervisorStrategy,
    all_for_one,
    one_for_one,
)
from tejido.actors.system import ActorSystem
from tejido.actors.timers import Timers
from tejido.actors.virtual import Grain, GrainRef, VirtualActors

__all__ = [
    "ActorSystem",
    "ClusterConfig",
    "Delivery",
    "Member",
    "MemberUp",
    "MemberDown",
    "MemberEvent",
    "RemoteActorRef",
    "TypeRegistry",
    "NodeLost",
    "NotSerializable",
    "RemoteError",
    "Actor",
    "ActorRef",
    "ActorPath",
    "Terminated",
    "TerminationCause",
    "DeadLetter",
    "DeadLetterReason",
    "MailboxConfig",
    "Overflow",
    "Timers",
    "SupervisorStrategy",
    "Directive",
    "Scope",
    "Backoff",
    "one_for_one",
    "all_for_one",
    "Routing",
    "RoundRobin",
    "RandomRouting",
    "Broadcast",
    "ConsistentHash",
    "BlockingActorSystem",
    "BlockingRef",
    "ActorError",
    "AskTimeout",
    "ActorStopped",
    "ActorFailed",
    "MailboxFull",
    "UnhandledMessage",
    "UnexpectedReply",
    "InvalidActorName",
    "ActorNameTaken",
    "SpawnFailed",
    "WrongThread",
    "Grain",
    "GrainRef",
    "VirtualActors",
    "GrainId",
    "PersistenceProvider",
    "MemoryProvider",
    "FileProvider",
    "StoreProvider",
    "StateConflict",
    "PersistenceError",
    "HashRing",
    "NoMembers",
]
