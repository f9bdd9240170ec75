"""Safety checks that run before any compute: the prompt policy (``prompt``).

``check_prompt`` decides one piece of request text under a ``Policy`` (default: the
packaged, versioned ``policies/default.toml``); ``PromptPolicyGate`` plugs the same
check into ``vidgen.Pipeline(prompt_gates=[...])``.
"""

from vidgen.safety.prompt import Policy, PromptPolicyGate, check_prompt, load_policy

__all__ = ["Policy", "PromptPolicyGate", "check_prompt", "load_policy"]
