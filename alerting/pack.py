"""The effective rule set: the built-in default pack plus the operator's rule files.

Custom files add to the default pack: a site that writes its own rules keeps the default alerts (agent silent,
SNMP device down, findings, overdue duties, ...). A custom rule with the alert name of a default rule replaces that
one (how a threshold of the pack is tuned). Replacing the whole pack is an explicit choice: `default_rules: false`
in the configuration (`alerting.default_rules`), `--no-default-rules` on `egovmon rules check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alerting.rules import Rule, RulesError, load_rules

DEFAULT_SOURCE = "default"


@dataclass(frozen=True, slots=True)
class PackedRule:
    """One rule of the effective set and where it comes from (`default` or a file path)."""

    rule: Rule
    source: str
    replaces_default: bool = False


def default_rules() -> list[Rule]:
    """The built-in default pack (`alerting/default_rules.yaml`)."""
    return load_rules(resources.files("alerting").joinpath("default_rules.yaml").read_text(encoding="utf-8")).rules()


def combine(default: Sequence[Rule], custom: Sequence[tuple[str, Sequence[Rule]]], *, keep_default: bool = True) -> list[PackedRule]:
    """The effective rules, in order: the default pack (minus the rules replaced), then each file's rules (pure).

    Raises:
        RulesError: two custom files define the same alert name.
    """
    seen = _custom_sources(custom)
    defaults = {rule.alert for rule in default} if keep_default else set()
    packed = [PackedRule(rule, DEFAULT_SOURCE) for rule in default if keep_default and rule.alert not in seen]
    packed += [PackedRule(rule, source, rule.alert in defaults) for source, rules in custom for rule in rules]
    return packed


def _custom_sources(custom: Sequence[tuple[str, Sequence[Rule]]]) -> dict[str, str]:
    """Alert name -> the custom file that defines it.

    Raises:
        RulesError: two custom files define the same alert name (every such clash is listed).
    """
    seen: dict[str, str] = {}
    problems = []
    for source, rules in custom:
        for rule in rules:
            if rule.alert in seen:
                problems.append(f"alert {rule.alert} is defined in both {seen[rule.alert]} and {source}")
            seen.setdefault(rule.alert, source)
    if problems:
        raise RulesError(problems)
    return seen


def load_rule_pack(files: Sequence[Path], *, default_rules_too: bool = True) -> list[PackedRule]:
    """The effective rules of `files` with (or, when `default_rules_too` is false, without) the default pack.

    Raises:
        RulesError: a file does not parse, or two files define the same alert name.
        OSError: a file cannot be read.
    """
    custom = []
    for path in files:
        try:
            custom.append((str(path), load_rules(Path(path).read_text(encoding="utf-8")).rules()))
        except RulesError as exc:
            raise RulesError([f"{path}: {problem}" for problem in exc.problems]) from exc
    return combine(default_rules() if default_rules_too else [], custom, keep_default=default_rules_too)
