"""LangChain tools protected by Sentinel.

``protect_tool(tool, config)`` returns a tool the model cannot tell apart from the original (same
name, description, argument schema, ``tool_call_schema``, ``return_direct``, tags, metadata,
``response_format``, callbacks, error handlers), whose every call is decided by the one decision
core, :class:`sentinel.guard.Guard`, exactly like a function under ``@protect``:

* LangChain validates and coerces the arguments with the tool's own schema first, so the rules
  see ``amount=5000`` (an int) even when the model sent ``"5000"``; a plain string input is
  mapped to the tool's single argument, so ``invoke("ceo@competitor.com")`` is matched as
  ``to="ceo@competitor.com"``.
* Allowed calls run the original tool; calls that need approval wait in the durable queue
  (``await``-friendly for ``ainvoke``; a sync tool called inside a running event loop waits on the
  guard's own loop thread instead of failing); anomaly detection and auditing come with the guard.
* A block, denial or expiry is returned to the model as a tool message it can read
  (``"<tool> not executed: <reason>. Do not retry this call."`` by default, followed by the
  rule's ``deny_hint`` when it has one, with ``status="error"`` when LangChain knows the
  tool-call id), so an agent loop keeps going and the tool never runs.
  ``raise_on_block=True`` re-raises the Sentinel exception instead.
* An operator may approve a call with edited arguments (``sentinel approve ID --set
  amount=400``, ``e`` in the command center): the values are validated with the tool's own
  schema, the tool runs once with them, and the model reads ``"Note: an operator changed this
  <tool> call before approving it (amount: 5000 → 400); …"`` before the tool's output.

This module only adapts LangChain's calling convention: no allow / block / approve logic lives here.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.messages import ToolMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool, StructuredTool
    from langchain_core.utils.pydantic import get_fields
    from pydantic import ConfigDict, Field, PrivateAttr
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sentinel.integrations.langchain needs langchain-core: "
        "pip install 'sentinel-guard[langchain]'"
    ) from _exc

from sentinel.config import SentinelConfig
from sentinel.edits import model_schema
from sentinel.errors import SentinelBlockedError
from sentinel.guard import Guard
from sentinel.integrations._common import (
    DEFAULT_BLOCK_MESSAGE,
    BlockMessage,
    block_details,
    check_block_message,
    edit_details,
    render_block,
    render_edit,
    resolve_guard,
)
from sentinel.store.models import ArgumentEdit

_lc_config_param: Callable[[Callable[..., Any]], str | None] | None
try:  # the helper LangChain itself uses to find a ``config: RunnableConfig`` parameter
    from langchain_core.tools.base import _get_runnable_config_param as _lc_config_param
except ImportError:  # pragma: no cover - older or newer langchain-core without it
    _lc_config_param = None

__all__ = [
    "COPIED_FIELDS",
    "DEFAULT_BLOCK_MESSAGE",
    "ProtectedTool",
    "create_protected_tool",
    "current_tool_call_id",
    "protect_tool",
    "protect_tools",
]

# Arguments LangChain passes to ``_run`` that are plumbing, not the model's input.
_PLUMBING = frozenset({"run_manager", "callbacks"})

# The tool-call id of the call being run, so a rejection can become an error ToolMessage.
# ``BaseTool.run`` does not hand it to ``_run``; it runs ``_run`` in a copy of this context.
_TOOL_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sentinel_langchain_tool_call_id", default=None
)


def current_tool_call_id() -> str | None:
    """The tool-call id of the protected call running in this context (None outside one)."""
    return _TOOL_CALL_ID.get()


# Fields of BaseTool a protected tool takes over from the original, so the model, callbacks and
# error handling see the same tool.
COPIED_FIELDS = (
    "name",
    "description",
    "return_direct",
    "verbose",
    "callbacks",
    "tags",
    "metadata",
    "handle_tool_error",
    "handle_validation_error",
    "response_format",
    "extras",
)


class ProtectedTool(BaseTool):
    """A LangChain tool whose calls are decided by Sentinel before the wrapped tool runs.

    Build it with :func:`protect_tool`; it behaves as the wrapped tool for everything else.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    wrapped_tool: BaseTool = Field(exclude=True)
    """The original tool (runs only when the guard lets the call through)."""

    block_message: Any = Field(default=None, exclude=True)
    """Template or callable for the text a model reads when a call is not executed."""

    raise_on_block: bool = False
    """Raise :class:`~sentinel.errors.SentinelBlockedError` instead of returning a message."""

    _guard: Guard = PrivateAttr()
    _hidden: tuple[Any, frozenset[str]] | None = PrivateAttr(default=None)
    _plumbing: dict[bool, _Plumbing] = PrivateAttr(default_factory=dict)

    def __init__(self, *, guard: Guard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    @property
    def guard(self) -> Guard:
        """The guard deciding this tool's calls."""
        return self._guard

    @functools.cached_property
    def _injected_args_keys(self) -> frozenset[str]:
        # Runtime-injected arguments (ToolRuntime, InjectedToolArg…) are the wrapped tool's.
        return frozenset(getattr(self.wrapped_tool, "_injected_args_keys", frozenset()))

    # -- LangChain entry points: remember the tool-call id for the duration of the call ---------

    def run(self, tool_input: str | dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        token = _TOOL_CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return super().run(tool_input, *args, **kwargs)
        finally:
            _TOOL_CALL_ID.reset(token)

    async def arun(self, tool_input: str | dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        token = _TOOL_CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return await super().arun(tool_input, *args, **kwargs)
        finally:
            _TOOL_CALL_ID.reset(token)

    # -- the calls themselves: ``BaseTool.run`` has already validated the input ---------------

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        inner = self.wrapped_tool
        if isinstance(inner, StructuredTool) and inner.func is None:
            # Say so before the guard asks anyone to approve a call that cannot run.
            raise NotImplementedError(f"tool {self.name!r} has no sync implementation; use ainvoke")
        call_args, call_kwargs, params = self._prepare(args, kwargs)
        plumbing = self._plumbing_for(False)
        applied: list[ArgumentEdit] = []

        def rebind(
            values: dict[str, Any], edit: ArgumentEdit
        ) -> tuple[dict[str, Any], Callable[[], Any]]:
            new_args, new_kwargs, new_params = self._edited(call_args, call_kwargs, params, values)
            applied.append(edit)
            return new_params, lambda: _call_sync(
                inner, plumbing, new_args, new_kwargs, config, run_manager
            )

        try:
            result = self._govern_sync(
                params,
                lambda: _call_sync(inner, plumbing, call_args, call_kwargs, config, run_manager),
                config,
                rebind=rebind,
                schema=self._arg_schema,
            )
        except SentinelBlockedError as exc:
            return self._rejected(exc)
        return self._with_edit(result, applied)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        inner = self.wrapped_tool
        call_args, call_kwargs, params = self._prepare(args, kwargs)
        plumbing = self._plumbing_for(True)
        applied: list[ArgumentEdit] = []

        def rebind(
            values: dict[str, Any], edit: ArgumentEdit
        ) -> tuple[dict[str, Any], Callable[[], Any]]:
            new_args, new_kwargs, new_params = self._edited(call_args, call_kwargs, params, values)
            applied.append(edit)
            return new_params, lambda: _call_async(
                inner, plumbing, new_args, new_kwargs, config, run_manager
            )

        try:
            result = await self._govern_async(
                params,
                lambda: _call_async(inner, plumbing, call_args, call_kwargs, config, run_manager),
                config,
                rebind=rebind,
                schema=self._arg_schema,
            )
        except SentinelBlockedError as exc:
            return self._rejected(exc)
        return self._with_edit(result, applied)

    # -- how a call is governed (an integration may park it instead of waiting) ------------------

    def _govern_sync(
        self,
        params: dict[str, Any],
        invoke: Callable[[], Any],
        config: RunnableConfig,
        **options: Any,
    ) -> Any:
        return self._guard.run_sync(self.name, params, invoke, **options)

    async def _govern_async(
        self,
        params: dict[str, Any],
        invoke: Callable[[], Any],
        config: RunnableConfig,
        **options: Any,
    ) -> Any:
        return await self._guard.run_async(self.name, params, invoke, **options)

    def sentinel_params(self, tool_call: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters the rules see for a tool call (``{"name", "args", "id"}``), validated
        and coerced by the tool's schema exactly as a run of it would. Raises the schema's
        validation error for arguments the tool would refuse."""
        args, kwargs = self._to_args_and_kwargs(tool_call.get("args") or {}, tool_call.get("id"))
        return self._prepare(args, kwargs)[2]

    # -- helpers --------------------------------------------------------------------------------

    def _prepare(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        """The wrapped tool's arguments and the parameters the rules see.

        ``BaseTool.run`` validated and coerced a dict input already. A string input reaches
        ``_run`` positionally (LangChain only validates it), so it is coerced here with the same
        schema and named after the tool's single argument; the tool then receives the coerced
        value, i.e. exactly what the rules saw.
        """
        if args:
            key, value = self._single_argument(args)
            return (value,), dict(kwargs), {key: value}
        hidden = self._hidden_keys()
        params = {k: v for k, v in kwargs.items() if k not in hidden}
        return (), dict(kwargs), params

    def _single_argument(self, args: tuple[Any, ...]) -> tuple[str, Any]:
        schema = self.args_schema
        if len(args) != 1 or not isinstance(schema, type):
            raise TypeError(
                f"tool {self.name!r} got positional input {args!r}; pass a dict of arguments"
            )
        fields = get_fields(schema)
        if not fields:
            raise TypeError(f"tool {self.name!r} takes no arguments but got {args[0]!r}")
        key = next(iter(fields))  # the field LangChain validated the string against
        if hasattr(schema, "model_validate"):
            value = getattr(schema.model_validate({key: args[0]}), key)
        else:  # a pydantic.v1 schema
            value = getattr(schema.parse_obj({key: args[0]}), key)
        return key, value

    def _plumbing_for(self, is_async: bool) -> _Plumbing:
        """What the wrapped tool's ``_run`` / ``_arun`` accepts, inspected once (signature and
        type-hint inspection cost more than the rest of a governed call)."""
        found = self._plumbing.get(is_async)
        if found is None:
            found = self._plumbing[is_async] = _Plumbing.of(self.wrapped_tool, is_async)
        return found

    def _hidden_keys(self) -> frozenset[str]:
        """Arguments the model does not supply (runtime injections): kept from the rules."""
        schema = self.args_schema
        cached = self._hidden
        if cached is not None and cached[0] is schema:
            return cached[1]
        # Computed per schema object: a copy with another schema must not reuse the answer,
        # since hiding a field the model controls would keep it from the rules.
        keys = set(_PLUMBING) | set(self._injected_args_keys)
        visible: set[str] = set()
        if isinstance(schema, type):
            call_schema = self.tool_call_schema
            visible = set(get_fields(call_schema)) if isinstance(call_schema, type) else set()
            keys |= set(get_fields(schema))
        elif isinstance(schema, dict):
            visible = set(schema.get("properties") or ())
        # Whatever the model can fill in is never hidden, whatever its name.
        hidden = frozenset(keys - visible)
        self._hidden = (schema, hidden)
        return hidden

    def _arg_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of what the model fills in (recorded with an approval request)."""
        try:
            return model_schema(self.tool_call_schema)
        except Exception:
            return model_schema(self.args_schema)

    def _edited(
        self,
        call_args: tuple[Any, ...],
        call_kwargs: dict[str, Any],
        params: dict[str, Any],
        values: dict[str, Any],
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        """The call with an operator's edited values, validated and coerced with the tool's own
        schema (a value it refuses raises: the guard refuses the approval, nothing runs)."""
        schema = self.args_schema
        typed = dict(values)
        if isinstance(schema, type) and hasattr(schema, "model_validate"):
            validated = schema.model_validate({**params, **values})
            typed = {k: getattr(validated, k) for k in values}
        new_params = {**params, **typed}
        if call_args:  # a single string input: it is the one argument
            key = next(iter(params))
            return (new_params[key],), dict(call_kwargs), new_params
        return (), {**call_kwargs, **typed}, new_params

    def _with_edit(self, result: Any, applied: list[ArgumentEdit]) -> Any:
        """The result of an edited call, with a note the model reads first: the call was
        changed before it ran, and how."""
        if not applied:
            return result
        edit = applied[-1]
        note = render_edit(edit, self.name)
        if isinstance(result, ToolMessage):
            copy = result.model_copy()
            copy.content = f"{note}\n{_text(result.content)}"
            return copy
        if self.response_format == "content_and_artifact" and isinstance(result, tuple):
            content, artifact = result
            return f"{note}\n{_text(content)}", artifact
        tool_call_id = _TOOL_CALL_ID.get()
        if isinstance(result, str) or tool_call_id is None:
            return f"{note}\n{_text(result)}" if isinstance(result, str) else result
        return ToolMessage(
            content=f"{note}\n{_text(result)}",
            tool_call_id=tool_call_id,
            name=self.name,
            artifact={**edit_details(edit), "result": result},
        )

    def _rejected(self, exc: SentinelBlockedError) -> Any:
        """What LangChain gets for a call that was not executed."""
        if self.raise_on_block:
            raise exc
        text = render_block(exc, self.block_message, self.name)
        tool_call_id = _TOOL_CALL_ID.get()
        result: Any = text
        if tool_call_id is not None:
            # An error ToolMessage: the model reads the text; agents and traces see a failure.
            result = ToolMessage(
                content=text,
                tool_call_id=tool_call_id,
                name=self.name,
                status="error",
                artifact=block_details(exc, self.name),
            )
        if self.response_format == "content_and_artifact":
            return result, block_details(exc, self.name)
        return result


def _text(content: Any) -> str:
    """Tool output as the text a model reads."""
    if isinstance(content, str):
        return content
    try:
        import json

        return json.dumps(content, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(content)


def _parameters(func: Callable[..., Any]) -> Any:
    try:
        return inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}


def _config_param(func: Callable[..., Any]) -> str | None:
    """The name of a ``RunnableConfig`` parameter of ``func``, if it has one."""
    if _lc_config_param is not None:
        try:
            return _lc_config_param(func)
        except Exception:  # an unresolvable annotation: treat as "no config parameter"
            return None
    for name, param in _parameters(func).items():
        if param.annotation in (RunnableConfig, "RunnableConfig"):
            return str(name)
    return None


class _Plumbing:
    """Whether a tool's ``_run`` (or ``_arun``) takes ``run_manager`` and the name of its
    ``RunnableConfig`` parameter, decided the way ``BaseTool.run`` / ``arun`` decide it."""

    __slots__ = ("config_param", "run_manager")

    def __init__(self, run_manager: bool, config_param: str | None) -> None:
        self.run_manager = run_manager
        self.config_param = config_param

    @classmethod
    def of(cls, tool: BaseTool, is_async: bool) -> _Plumbing:
        if is_async and type(tool)._arun is not BaseTool._arun:
            target = tool._arun
        else:  # BaseTool's default _arun runs _run in an executor, with _run's plumbing
            target = tool._run
        return cls("run_manager" in _parameters(target), _config_param(target))

    def kwargs(
        self, kwargs: dict[str, Any], config: RunnableConfig, run_manager: Any
    ) -> dict[str, Any]:
        call = dict(kwargs)
        if run_manager is not None and self.run_manager:
            call["run_manager"] = run_manager
        if self.config_param:
            call[self.config_param] = config
        return call


def _call_sync(
    tool: BaseTool,
    plumbing: _Plumbing,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    config: RunnableConfig,
    run_manager: CallbackManagerForToolRun | None,
) -> Any:
    """Run the wrapped tool the way ``BaseTool.run`` would have (same plumbing arguments)."""
    return tool._run(*args, **plumbing.kwargs(kwargs, config, run_manager))


async def _call_async(
    tool: BaseTool,
    plumbing: _Plumbing,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    config: RunnableConfig,
    run_manager: AsyncCallbackManagerForToolRun | None,
) -> Any:
    """Run the wrapped tool the way ``BaseTool.arun`` would have. A tool without an async
    implementation runs in an executor (LangChain's own default for ``_arun``)."""
    return await tool._arun(*args, **plumbing.kwargs(kwargs, config, run_manager))


def _input_schema(tool: BaseTool) -> Any:
    """The tool's argument schema, inferred from ``_run`` (as LangChain does) when it has none,
    so a ``BaseTool`` subclass without ``args_schema`` still gets its arguments validated."""
    if tool.args_schema is not None:
        return tool.args_schema
    return tool.get_input_schema()


def protect_tool(
    tool: BaseTool,
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
) -> ProtectedTool:
    """Return ``tool`` protected by Sentinel (the original is left untouched).

    ``tool`` is any LangChain tool: a ``@tool`` function, a ``StructuredTool`` or a ``BaseTool``
    subclass, sync or async. ``config`` defaults to ``SentinelConfig()`` (``SENTINEL_*``
    variables); its rules file is loaded now, so a bad policy fails here. ``context_fn`` supplies
    context for approvers, as with ``@protect``. ``block_message`` is the text a model reads for a
    call that was not executed (template with ``{tool}``, ``{reason}``, ``{status}``,
    ``{rule_id}``, ``{request_id}``, or a callable taking the exception); ``raise_on_block=True``
    raises the :class:`~sentinel.errors.SentinelBlockedError` instead. ``guard`` uses an existing
    :class:`~sentinel.guard.Guard` (e.g. one built with custom hooks) instead of ``config``.
    """
    if not isinstance(tool, BaseTool):
        raise TypeError(
            f"protect_tool expects a LangChain BaseTool, got {type(tool).__name__}; "
            "use create_protected_tool for a plain function"
        )
    where = f"protect_tool({tool.name!r})"
    the_guard = resolve_guard(config, context_fn, guard, where)
    message = check_block_message(block_message, where)
    fields: dict[str, Any] = {
        name: getattr(tool, name) for name in COPIED_FIELDS if name in BaseTool.model_fields
    }
    fields["args_schema"] = _input_schema(tool)
    return ProtectedTool(
        guard=the_guard,
        wrapped_tool=tool,
        block_message=message,
        raise_on_block=raise_on_block,
        **fields,
    )


def protect_tools(
    tools: Sequence[BaseTool],
    config: SentinelConfig | None = None,
    context_fn: Callable[..., Any] | None = None,
    *,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
) -> list[ProtectedTool]:
    """:func:`protect_tool` for each tool of ``tools`` (same config and options)."""
    return [
        protect_tool(
            t,
            config,
            context_fn,
            block_message=block_message,
            raise_on_block=raise_on_block,
            guard=guard,
        )
        for t in tools
    ]


def create_protected_tool(
    func: Callable[..., Any] | SentinelConfig | None = None,
    config: SentinelConfig | None = None,
    name: str | None = None,
    description: str | None = None,
    context_fn: Callable[..., Any] | None = None,
    return_direct: bool = False,
    *,
    args_schema: Any = None,
    response_format: Literal["content", "content_and_artifact"] = "content",
    parse_docstring: bool = False,
    block_message: BlockMessage = None,
    raise_on_block: bool = False,
    guard: Guard | None = None,
    **tool_kwargs: Any,
) -> Any:
    """Build a protected LangChain tool from a function (sync or async).

    Call it directly, ``create_protected_tool(transfer, config, name="transfer_funds")``, or use it
    as a decorator: ``@create_protected_tool(config, name="transfer_funds")`` (also
    ``@create_protected_tool(config=config)`` and bare ``@create_protected_tool``, which uses
    ``SentinelConfig()``). The argument schema is inferred from the signature and docstring by
    LangChain (``StructuredTool.from_function``); extra keyword arguments go to it as well.
    """
    if isinstance(func, SentinelConfig):
        if config is not None:
            raise TypeError("create_protected_tool: config given twice")
        func, config = None, func

    def build(fn: Callable[..., Any]) -> ProtectedTool:
        if not callable(fn):
            raise TypeError(f"create_protected_tool expects a function, got {type(fn).__name__}")
        is_async = inspect.iscoroutinefunction(fn)
        base = StructuredTool.from_function(
            func=None if is_async else fn,
            coroutine=fn if is_async else None,
            name=name,
            description=description,
            return_direct=return_direct,
            args_schema=args_schema,
            response_format=response_format,
            parse_docstring=parse_docstring,
            **tool_kwargs,
        )
        return protect_tool(
            base,
            config,
            context_fn,
            block_message=block_message,
            raise_on_block=raise_on_block,
            guard=guard,
        )

    if func is None:
        return build
    return build(func)
