"""The resource core without a process: the registry, the lifecycle (Ready, ValidateConfig, Add, Reconfigure,
Remove, close) and the ModuleService adapter, on a toy resource; and the manager's wait for a resource that is
being replaced (viam-server's RemoveResource, then AddResource)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from module.errors import ConfigError, NotFoundError, UnavailableError
from module.gen.app.v1 import robot_pb2 as app_pb2
from module.gen.module.v1 import module_pb2 as pb
from module.resource.base import Dependencies
from module.resource.lifecycle import Lifecycle, ResourceConfig
from module.resource.manager import ResourceManager
from module.resource.module_service import ModuleServicer
from module.resource.names import API, Model
from module.resource.registry import APISpec, ModelSpec, Registry, ResourceContext
from module.resource.structs import dict_to_struct

pytestmark = pytest.mark.timeout(30)
TOY_API = API("acme", "service", "toy")
TOY = Model("acme", "toys", "toy")
WAIT_S = 10.0


@dataclass(frozen=True)
class ToyConfig:
    size: int
    friend: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ToyConfig:
        size = raw.get("size", 1)
        if not isinstance(size, (int, float)) or size < 1:
            raise ConfigError(f"attribute 'size' must be a number >= 1, got {size!r}")
        return cls(int(size), str(raw.get("friend", "")))

    def dependencies(self) -> Dependencies:
        return Dependencies(required=(self.friend,) if self.friend else (), optional=("radio",))


class Toy:
    built: list[Toy] = []
    gate: threading.Event | None = None  # when set, building waits for it (a slow AddResource)

    def __init__(self, context: ResourceContext, config: ToyConfig) -> None:
        if config.size == 13:
            raise UnavailableError("size 13 cannot be built right now")
        if Toy.gate is not None:
            Toy.gate.wait(WAIT_S)
        self.name, self.size, self.context, self.closed = context.name, config.size, context, False
        Toy.built.append(self)

    def close(self) -> None:
        self.closed = True


REGISTRY = Registry(apis=[APISpec(TOY_API, "acme.toy.v1.ToyService")],
                    models=[ModelSpec(TOY_API, TOY, ToyConfig.parse, ToyConfig.dependencies, Toy, "a toy")])


def config(name: str = "t", **attributes: Any) -> ResourceConfig:
    return ResourceConfig(name=name, api=str(TOY_API), model=str(TOY), attributes=attributes)


@pytest.fixture
def lifecycle(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lifecycle]:
    monkeypatch.setenv("VIAM_NO_MODULE_PARENT", "true")
    Toy.built, Toy.gate = [], None
    life = Lifecycle(REGISTRY)
    yield life
    life.close()


# --- registry ----------------------------------------------------------------------------------------------------------

def test_registry_lookup_and_its_errors() -> None:
    assert REGISTRY.lookup("acme:service:toy", "acme:toys:toy").create is Toy
    with pytest.raises(NotFoundError, match="serves acme:toys:toy"):
        REGISTRY.lookup("acme:service:toy", "acme:toys:other")
    with pytest.raises(NotFoundError, match="serves"):
        REGISTRY.lookup("not an api", "acme:toys:toy")
    assert REGISTRY.models_by_api() == {TOY_API: [TOY]}


def test_registry_refuses_duplicates_and_unknown_apis() -> None:
    spec = ModelSpec(TOY_API, TOY, ToyConfig.parse, ToyConfig.dependencies, Toy, "")
    with pytest.raises(ValueError, match="twice"):
        Registry(apis=[APISpec(TOY_API, "s"), APISpec(TOY_API, "s")], models=[])
    with pytest.raises(ValueError, match="twice"):
        Registry(apis=[APISpec(TOY_API, "s")], models=[spec, spec])
    with pytest.raises(ValueError, match="not registered"):
        Registry(apis=[], models=[spec])


# --- lifecycle -------------------------------------------------------------------------------------------------------

def test_ready_without_a_parent_lists_the_models(lifecycle: Lifecycle) -> None:
    assert lifecycle.ready("/nonexistent/parent.sock") == {TOY_API: [str(TOY)]}
    assert lifecycle.parent() is None  # VIAM_NO_MODULE_PARENT: never dialled


def test_validate_returns_dependencies_and_names_the_resource_in_errors(lifecycle: Lifecycle) -> None:
    assert lifecycle.validate(config(friend="cam")) == Dependencies(required=("cam",), optional=("radio",))
    with pytest.raises(ConfigError, match=r"acme:service:toy/t: attribute 'size'"):
        lifecycle.validate(config(size=0))
    with pytest.raises(ConfigError, match="no name"):
        lifecycle.validate(config(name=""))


def test_add_replace_and_remove(lifecycle: Lifecycle) -> None:
    lifecycle.add(config(size=2), ["acme:service:toy/friend"])
    first = lifecycle.resources.get(TOY_API, "t")
    assert first.size == 2 and [str(d) for d in first.context.dependencies] == ["acme:service:toy/friend"]
    assert first.context.logger.name == "acme:service:toy/t"  # named as viam-server names resource loggers
    lifecycle.add(config(size=3), [])  # AddResource over an existing name (a re-add): replaced, the old closed
    second = lifecycle.resources.get(TOY_API, "t")
    assert second.size == 3 and first.closed and not second.closed
    lifecycle.remove("acme:service:toy/t")
    assert second.closed and lifecycle.resources.find(TOY_API, "t") is None
    with pytest.raises(NotFoundError, match="no resource"):
        lifecycle.remove("acme:service:toy/t")
    with pytest.raises(NotFoundError):
        lifecycle.remove("not a name")


def test_a_reconfigure_that_fails_keeps_the_old_one_serving(lifecycle: Lifecycle) -> None:
    lifecycle.add(config(size=2), [])
    old = lifecycle.resources.get(TOY_API, "t")
    with pytest.raises(UnavailableError):
        lifecycle.reconfigure(config(size=13), [])
    with pytest.raises(ConfigError):
        lifecycle.reconfigure(config(size=-1), [])
    assert lifecycle.resources.get(TOY_API, "t") is old and not old.closed


def test_the_old_resource_serves_while_the_new_one_builds(lifecycle: Lifecycle) -> None:
    lifecycle.add(config(size=2), [])
    old = lifecycle.resources.get(TOY_API, "t")
    Toy.gate = threading.Event()
    builder = threading.Thread(target=lambda: lifecycle.add(config(size=5), []))
    builder.start()
    assert lifecycle.resources.get(TOY_API, "t") is old  # still in service during the build
    Toy.gate.set()
    builder.join(WAIT_S)
    assert lifecycle.resources.get(TOY_API, "t").size == 5 and old.closed


def test_close_closes_every_resource(lifecycle: Lifecycle) -> None:
    lifecycle.add(config("a"), [])
    lifecycle.add(config("b"), [])
    lifecycle.close()
    assert all(t.closed for t in Toy.built) and lifecycle.resources.names(TOY_API) == []


# --- ModuleService ---------------------------------------------------------------------------------------------------

def test_module_service_adapts_the_wire_to_the_lifecycle(lifecycle: Lifecycle) -> None:
    servicer = ModuleServicer(lifecycle, {TOY_API: "acme.toy.v1.ToyService"})
    ready = servicer.Ready(pb.ReadyRequest(parent_address="/nonexistent"), None)  # type: ignore[arg-type]
    (handler,) = ready.handlermap.handlers
    assert ready.ready and handler.subtype.proto_service == "acme.toy.v1.ToyService"
    assert (handler.subtype.subtype.namespace, handler.subtype.subtype.type, handler.subtype.subtype.subtype) == (
        "acme", "service", "toy") and list(handler.models) == [str(TOY)]
    wire = app_pb2.ComponentConfig(name="t", api=str(TOY_API), model=str(TOY),
                                   attributes=dict_to_struct({"size": 4, "friend": "cam"}))
    validated = servicer.ValidateConfig(pb.ValidateConfigRequest(config=wire), None)  # type: ignore[arg-type]
    assert list(validated.dependencies) == ["cam"] and list(validated.optional_dependencies) == ["radio"]
    servicer.AddResource(pb.AddResourceRequest(config=wire, dependencies=["acme:service:toy/cam"]), None)  # type: ignore[arg-type]
    assert lifecycle.resources.get(TOY_API, "t").size == 4
    wire.attributes.CopyFrom(dict_to_struct({"size": 6}))
    servicer.ReconfigureResource(pb.ReconfigureResourceRequest(config=wire), None)  # type: ignore[arg-type]
    assert lifecycle.resources.get(TOY_API, "t").size == 6
    servicer.RemoveResource(pb.RemoveResourceRequest(name="acme:service:toy/t"), None)  # type: ignore[arg-type]
    assert lifecycle.resources.find(TOY_API, "t") is None


def test_module_service_takes_the_api_from_namespace_and_type_on_old_servers(lifecycle: Lifecycle) -> None:
    servicer = ModuleServicer(lifecycle, {TOY_API: "acme.toy.v1.ToyService"})
    wire = app_pb2.ComponentConfig(name="t", namespace="acme", type="toy", model=str(TOY))  # no "api" field
    servicer.AddResource(pb.AddResourceRequest(config=wire), None)  # type: ignore[arg-type]
    assert lifecycle.resources.get(TOY_API, "t").size == 1


# --- a resource being replaced (RemoveResource, then AddResource) ------------------------------------------------------

class Thing:
    def close(self) -> None:
        pass


def _waiting(manager: ResourceManager) -> bool:
    return bool(manager._changed._waiters)  # type: ignore[attr-defined]  # a thread is blocked in the wait


def test_a_wait_for_a_removed_resource_ends_when_it_is_put_back() -> None:
    manager = ResourceManager(replacement_wait_s=60)
    manager.put(TOY_API, "t", Thing())
    manager.pop(TOY_API, "t")
    replacement = Thing()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(manager.wait_for_replacement(TOY_API, "t")))
    waiter.start()
    while not _waiting(manager):
        waiter.join(0.001)
    manager.put(TOY_API, "t", replacement)
    waiter.join(WAIT_S)
    assert got == [replacement] and manager.removal(TOY_API, "t") is None


def test_no_wait_for_a_name_that_was_never_there_or_is_there() -> None:
    manager = ResourceManager(replacement_wait_s=60)
    assert manager.wait_for_replacement(TOY_API, "never") is None  # returns at once (the test would time out)
    thing = Thing()
    manager.put(TOY_API, "t", thing)
    assert manager.wait_for_replacement(TOY_API, "t") is thing


def test_a_wait_is_bounded_by_the_callers_time_and_then_by_the_window() -> None:
    manager = ResourceManager(replacement_wait_s=60)
    manager.put(TOY_API, "t", Thing())
    manager.pop(TOY_API, "t")
    assert manager.wait_for_replacement(TOY_API, "t", timeout=0.0) is None  # the caller has no time left
    closed = ResourceManager(replacement_wait_s=0)
    closed.put(TOY_API, "t", Thing())
    closed.pop(TOY_API, "t")
    assert closed.wait_for_replacement(TOY_API, "t") is None  # the window is over: no wait at all
    assert closed.removal(TOY_API, "t") is not None  # but the removal is remembered for messages
