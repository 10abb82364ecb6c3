"""Framework integrations. Each one adapts a framework's tool calling convention to the single
decision core (:class:`sentinel.guard.Guard`) and holds no decision logic of its own.

* :mod:`sentinel.integrations.langchain`: ``protect_tool`` / ``protect_tools`` /
  ``create_protected_tool`` (extra ``[langchain]``);
* :mod:`sentinel.integrations.langgraph`: ``protected_tool_node`` (extra ``[langgraph]``);
* :mod:`sentinel.integrations.openai_agents`: ``protect_function_tool`` /
  ``protected_function_tool`` / ``policy_needs_approval`` (extra ``[openai-agents]``).

The submodules import their framework; this package imports nothing.
"""
