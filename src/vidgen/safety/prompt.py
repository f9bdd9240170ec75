"""The prompt policy: refuse harmful request text before any compute is spent.

A policy is data (``policies/default.toml``, versioned): categories, each with rules
over a curated lexicon. Rules look at context, not words alone: a rule fires on an
*anchor* term only if its context terms are near (``near``, within a token window,
optionally in one direction) or anywhere in the text (``with``), and not if a benign
context term is near it (``unless_near``) or anywhere (``unless_any``). Benign phrases
(``[benign] phrases``: "bloody mary", "nude palette", "bath bomb") hide the words inside
them from every rule. Text is first normalised against evasion
(``vidgen.safety.normalize``).

Every decision is written to the ``vidgen.safety.audit`` logger as one structured record
(``extra={"vidgen_audit": {...}}``) with the text's SHA-256, never the text itself unless
the policy says ``log_prompts = true``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import attrs

from vidgen.errors import ConfigurationError
from vidgen.safety.normalize import (
    LOOSE,
    NormalizedText,
    canonical_term,
    dedup,
    loose,
    normalize,
)
from vidgen.types import PromptDecision

AUDIT_LOGGER = "vidgen.safety.audit"
KINDS = ("prompt", "negative_prompt", "style", "edit_instruction")
_DIRECTIONS = ("any", "after", "before")
_T = TypeVar("_T")
_AUDIT = logging.getLogger(AUDIT_LOGGER)
_AUDIT.addHandler(logging.NullHandler())  # a library never prints through logging.lastResort
_HASH_PERSON = b"vidgen-lexicon"

# A hit: (space, start, end, first token, last token). Spaces: 0 tokens (start/end are
# token indices), 1 Hangul form, 2 squashed form, 3 words, 4 cased words, 5 canonical
# words, 6 inside a joined run of letters (start/end are character offsets in that form;
# for 6, offset + token index * _JOINED_STRIDE, so hits in different runs differ).
Hit = tuple[int, int, int, int, int]
_TOKENS, _HANGUL, _SQUASHED, _WORDS, _CASED, _CANON, _JOINED = range(7)
_JOINED_STRIDE = 1 << 20
_MIN_SUBSTRING = 3  # shorter terms inside a joined run ("kk") match by chance


def term_hash(form: str) -> str:
    """Digest under which a hashed lexicon term (``h:LEN:HEX``) is stored.

    Slurs are kept hashed so the policy file does not spread them; the form hashed is
    the canonical one (lower case, leet read, runs of 3+ letters cut to 2).
    """
    return hashlib.blake2b(form.encode(), digest_size=8, person=_HASH_PERSON).hexdigest()


# --- policy data -------------------------------------------------------------------------


@attrs.frozen
class Rule:
    """One way a category triggers; term lists hold lexicon keys (see ``Lexicon``)."""

    id: str
    terms: frozenset[str]
    near: tuple[frozenset[str], ...] = ()
    window: int = 4
    direction: str = "any"
    with_: tuple[frozenset[str], ...] = ()
    unless_near: frozenset[str] = frozenset()
    unless_window: int = 2
    unless_any: frozenset[str] = frozenset()
    kinds: frozenset[str] | None = None
    why: str = ""


@attrs.frozen
class Category:
    """A kind of content the policy refuses. ``configurable=False`` cannot be disabled."""

    name: str
    description: str
    configurable: bool
    enabled: bool
    kinds: frozenset[str]
    rules: tuple[Rule, ...]


@attrs.frozen
class Policy:
    """A loaded, compiled policy. Make one with ``load_policy``."""

    version: str
    categories: tuple[Category, ...]
    log_prompts: bool = False
    source: str = "default"
    lexicon: Lexicon = attrs.field(kw_only=True, eq=False, repr=False)

    @property
    def configurable(self) -> dict[str, bool]:
        """Category name -> whether a deployment may switch it off."""
        return {c.name: c.configurable for c in self.categories}

    @property
    def enabled(self) -> dict[str, bool]:
        """Category name -> whether it is checked."""
        return {c.name: c.enabled for c in self.categories}

    def with_overrides(self, overrides: Mapping[str, bool] | None = None, *,
                       log_prompts: bool | None = None) -> Policy:
        """The same policy with configurable categories switched on or off."""
        overrides = dict(overrides or {})
        names = {c.name for c in self.categories}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigurationError(
                f"unknown prompt-policy categories in overrides: {unknown}; "
                f"known: {sorted(names)}")
        categories = []
        for cat in self.categories:
            if cat.name in overrides:
                want = overrides[cat.name]
                if not isinstance(want, bool):
                    raise ConfigurationError(
                        f"override for {cat.name!r} must be true or false, got {want!r}")
                if not cat.configurable and not want:
                    raise ConfigurationError(
                        f"category {cat.name!r} is not configurable and cannot be disabled")
                cat = attrs.evolve(cat, enabled=want)
            categories.append(cat)
        return attrs.evolve(self, categories=tuple(categories),
                            log_prompts=self.log_prompts if log_prompts is None else log_prompts)


# --- the compiled lexicon ----------------------------------------------------------------


@attrs.frozen(eq=False)
class _Seq:
    key: str
    rest: tuple[tuple[str, str, bool], ...]  # (spelling, loose form, prefix) after the first


class Lexicon:
    """Every term of a policy, compiled once for fast matching of normalised text.

    Term syntax in the policy: ``word``, ``two words``, ``prefix*``; Hangul terms are
    found as substrings of the Hangul form; ``~term`` is also searched in the squashed
    form (only for long, unambiguous terms); ``re:PATTERN`` / ``rc:PATTERN`` are regular
    expressions over the lower-cased / original-case words; ``h:LEN:HEX`` is a hashed
    single word, ``hk:LEN:HEX`` a hashed Hangul substring (``term_hash``).
    """

    def __init__(self, terms: Iterable[str], masks: Iterable[str]) -> None:
        self.exact_first: dict[str, list[_Seq]] = {}
        self.prefix_first: dict[str, list[_Seq]] = {}
        self.single_exact: dict[str, list[str]] = {}
        self.single_prefix: dict[str, list[str]] = {}
        self.hangul: dict[str, list[str]] = {}
        self.squashed: dict[str, list[str]] = {}
        self.regexes: list[tuple[str, re.Pattern[str], bool]] = []
        self.hashed: dict[str, list[str]] = {}
        self.hashed_lengths: set[int] = set()
        self.hashed_hangul: dict[str, list[str]] = {}
        self.hashed_hangul_lengths: set[int] = set()
        terms = frozenset(terms)
        self.masks: frozenset[str] = frozenset(masks)
        self._mask_only = self.masks - terms  # a mask that is also a rule term stays a hit
        for term in terms | self.masks:
            self._add(term)
        self.single_lengths = sorted({len(k) for k in self.single_exact}
                                     | {len(k) for k in self.single_prefix})
        self.hangul_lengths = sorted({len(k) for k in self.hangul})
        self.squashed_lengths = sorted({len(k) for k in self.squashed})
        self.hangul_starts, self.hangul_start_len = _starts(self.hangul)
        self.squashed_starts, self.squashed_start_len = _starts(self.squashed)
        # Prefix patterns bucketed by their first _BUCKET letters: one lookup per word.
        self.prefix_seq = _buckets(self.prefix_first)
        self.prefix_single = _buckets(self.single_prefix)

    def _add(self, term: str) -> None:
        if term.startswith(("re:", "rc:")):
            try:
                pattern = re.compile(term[3:])
            except re.error as exc:
                raise ConfigurationError(f"bad regular expression {term!r}: {exc}") from exc
            self.regexes.append((term, pattern, term.startswith("rc:")))
            return
        if term.startswith(("h:", "hk:")):
            try:
                prefix, length, digest = term.split(":")
                size = int(length)
            except ValueError as exc:
                raise ConfigurationError(f"bad hashed term {term!r}: want h:LEN:HEX") from exc
            if prefix == "h":
                self.hashed_lengths.add(size)
                self.hashed.setdefault(digest, []).append(term)
            else:
                self.hashed_hangul_lengths.add(size)
                self.hashed_hangul.setdefault(digest, []).append(term)
            return
        squash = term.startswith("~")
        patterns = canonical_term(term.lstrip("~"))
        if not patterns or not all(p for p, _ in patterns):
            raise ConfigurationError(f"lexicon term {term!r} has no letters to match")
        first, first_prefix = patterns[0]
        if any(ord(c) >= 0xAC00 for c in first) and len(patterns) == 1:
            self.hangul.setdefault(first, []).append(term)
            return
        seq = _Seq(key=term, rest=tuple((p, loose(p), pre) for p, pre in patterns[1:]))
        first_table = self.prefix_first if first_prefix else self.exact_first
        for key in {first, loose(first)}:
            first_table.setdefault(key, []).append(seq)
        glued = "".join(p for p, _ in patterns)  # "child porn" also as "childporn"
        table = self.single_prefix if patterns[-1][1] else self.single_exact
        for key in {glued, loose(glued)}:
            if term not in table.get(key, ()):
                table.setdefault(key, []).append(term)
        if squash:
            self.squashed.setdefault(dedup(glued), []).append(term)

    # --- matching ------------------------------------------------------------------

    def match(self, nt: NormalizedText) -> dict[str, list[Hit]]:
        """Term key -> where it occurs, with benign phrases already taken out."""
        hits: dict[str, list[Hit]] = {}
        seen: set[tuple[str, Hit]] = set()

        def add(key: str, hit: Hit) -> None:
            if (key, hit) not in seen:
                seen.add((key, hit))
                hits.setdefault(key, []).append(hit)

        tokens = nt.tokens
        for i, tok in enumerate(tokens):
            if tok.hangul:
                continue
            for form in tok.forms:
                for seq in self.exact_first.get(form, ()):
                    end = self._rest(tokens, i, seq.rest)
                    if end >= 0:
                        add(seq.key, (_TOKENS, i, end, i, end))
                for _pfx, seqs in _prefixed(self.prefix_seq, form):
                    for seq in seqs:
                        end = self._rest(tokens, i, seq.rest)
                        if end >= 0:
                            add(seq.key, (_TOKENS, i, end, i, end))
                if self.hashed and len(form) in self.hashed_lengths and form[0] != LOOSE:
                    for key in self.hashed.get(term_hash(form), ()):
                        add(key, (_TOKENS, i, i, i, i))
            if tok.joined:
                base = i * _JOINED_STRIDE
                for form in tok.forms:
                    for key, a, b in self._substrings(form):
                        add(key, (_JOINED, base + a, base + b, i, i))
        for comp in nt.compounds:
            for form in comp.forms:
                for key in self.single_exact.get(form, ()):
                    add(key, (_TOKENS, comp.first, comp.last, comp.first, comp.last))
                for _pfx, keys in _prefixed(self.prefix_single, form):
                    for key in keys:
                        add(key, (_TOKENS, comp.first, comp.last, comp.first, comp.last))
        if nt.hangul and (self.hangul or self.hashed_hangul):
            self._scan(nt.hangul, nt.hangul_index, self.hangul, self.hangul_lengths,
                       self.hangul_starts, self.hangul_start_len, _HANGUL, add, hashed=True)
        if self.squashed and nt.squashed:
            self._scan(nt.squashed, nt.squashed_index, self.squashed, self.squashed_lengths,
                       self.squashed_starts, self.squashed_start_len, _SQUASHED, add,
                       hashed=False)
        for key, pattern, cased in self.regexes:
            forms = ((nt.cased, _CASED, "cased"),) if cased else (
                (nt.words, _WORDS, "words"), (nt.canonical, _CANON, "canonical"))
            for text, space, name in forms:
                for m in pattern.finditer(text):
                    first = nt.token_at(m.start(), name)
                    last = nt.token_at(max(m.start(), m.end() - 1), name)
                    add(key, (space, m.start(), m.end(), first, last))
        return self._apply_masks(hits) if self.masks else hits

    @staticmethod
    def _rest(tokens: Sequence[Any], i: int, rest: tuple[tuple[str, str, bool], ...]) -> int:
        """Index of the last token if the patterns after the first match from i+1, else -1."""
        j = i
        for pattern, loose_pattern, prefix in rest:
            j += 1
            if j >= len(tokens):
                return -1
            forms = tokens[j].forms
            if prefix:
                if not any(f.startswith((pattern, loose_pattern)) for f in forms):
                    return -1
            elif pattern not in forms and loose_pattern not in forms:
                return -1
        return j

    def _substrings(self, form: str) -> Iterable[tuple[str, int, int]]:
        """Single-word terms found anywhere inside ``form`` (a joined run of letters)."""
        mark, text = (LOOSE, form[1:]) if form.startswith(LOOSE) else ("", form)
        for start in range(len(text)):
            for length in self.single_lengths:
                if length < _MIN_SUBSTRING:
                    continue
                end = start + length
                if end > len(text):
                    break
                piece = mark + text[start:end]
                for key in (*self.single_exact.get(piece, ()), *self.single_prefix.get(piece, ())):
                    yield key, start, end

    def _scan(self, text: str, index: tuple[int, ...], table: dict[str, list[str]],
              lengths: list[int], starts: frozenset[str], start_len: int, space: int,
              add: Any, *, hashed: bool) -> None:
        """Terms of ``table`` (and hashed Hangul terms) anywhere in a character form."""
        hash_lengths = sorted(self.hashed_hangul_lengths) if hashed else []
        for start in range(len(text)):
            for length in (lengths if text[start:start + start_len] in starts else ()):
                if start + length > len(text):
                    break
                for key in table.get(text[start:start + length], ()):
                    add(key, (space, start, start + length, index[start],
                              index[start + length - 1]))
            for length in hash_lengths:
                if start + length > len(text):
                    break
                digest = term_hash(text[start:start + length])
                for key in self.hashed_hangul.get(digest, ()):
                    add(key, (space, start, start + length, index[start],
                              index[start + length - 1]))

    def _apply_masks(self, hits: dict[str, list[Hit]]) -> dict[str, list[Hit]]:
        masks = _TokenIndex([h for k in self.masks for h in hits.get(k, ())])
        if not masks:
            return hits
        out: dict[str, list[Hit]] = {}
        for key, lst in hits.items():
            if key in self._mask_only:
                continue
            kept = [h for h in lst if not any(_inside(h, m) for m in masks.around(h, 0))]
            if kept:
                out[key] = kept
        return out


_BUCKET = 3


def _buckets(table: Mapping[str, list[_T]]) -> dict[str, list[tuple[str, list[_T]]]]:
    """Prefix table -> {first _BUCKET letters (or fewer for short keys): [(key, values)]}."""
    out: dict[str, list[tuple[str, list[_T]]]] = {}
    for key, values in table.items():
        out.setdefault(key[:_BUCKET], []).append((key, values))
    return out


def _prefixed(buckets: Mapping[str, list[tuple[str, list[_T]]]],
              form: str) -> Iterable[tuple[str, list[_T]]]:
    """(key, values) of every prefix key that ``form`` starts with."""
    for size in range(1, min(_BUCKET, len(form)) + 1):
        for key, values in buckets.get(form[:size], ()):
            if form.startswith(key):
                yield key, values


def _starts(table: Mapping[str, object]) -> tuple[frozenset[str], int]:
    """The set of key beginnings used to skip positions where no key can start."""
    if not table:
        return frozenset(), 1
    size = min(2, min(len(k) for k in table))
    return frozenset(k[:size] for k in table), size


class _TokenIndex:
    """Hits indexed by first token, to find the few near a given hit without a full scan
    (a prompt that repeats a word thousands of times must not make checking quadratic)."""

    def __init__(self, hits: list[Hit]) -> None:
        self.by_token: dict[int, list[Hit]] = {}
        self.span = 0
        for h in hits:
            self.by_token.setdefault(h[3], []).append(h)
            self.span = max(self.span, h[4] - h[3])

    def __bool__(self) -> bool:
        return bool(self.by_token)

    def around(self, hit: Hit, window: int) -> Iterable[Hit]:
        """Every indexed hit whose tokens may lie within ``window`` tokens of ``hit``."""
        by_token = self.by_token
        for t in range(hit[3] - window - self.span, hit[4] + window + 1):
            yield from by_token.get(t, ())


def _inside(hit: Hit, mask: Hit) -> bool:
    """True if ``hit`` lies within ``mask`` and is strictly smaller."""
    if hit[0] == mask[0]:
        return mask[1] <= hit[1] and hit[2] <= mask[2] and (hit[1], hit[2]) != (mask[1], mask[2])
    # different forms: compare token spans; a whole-token hit inside a longer phrase
    return (mask[3] <= hit[3] and hit[4] <= mask[4]
            and (hit[3], hit[4]) != (mask[3], mask[4]))


def _gap(a: Hit, b: Hit) -> int:
    """Tokens between two hits: positive when b is after a, negative when before, 0 when
    they overlap. Two hits inside one token of a character form (a joined run of letters,
    Hangul without spaces) are ordered by their characters, one token apart."""
    if b[3] > a[4]:
        return b[3] - a[4]
    if b[4] < a[3]:
        return -(a[3] - b[4])
    if a[0] == b[0] and a[0] != _TOKENS:
        if b[1] >= a[2]:
            return 1
        if b[2] <= a[1]:
            return -1
    return 0


def _near(anchor: Hit, ctx: Hit, window: int, direction: str) -> bool:
    if ctx == anchor:
        return False
    gap = _gap(anchor, ctx)
    if direction == "after":
        return 0 < gap <= window
    if direction == "before":
        return 0 < -gap <= window
    return abs(gap) <= window


def _fires(rule: Rule, hits: dict[str, list[Hit]]) -> bool:
    if rule.terms.isdisjoint(hits.keys()):
        return False
    if rule.unless_any and any(k in rule.unless_any for k in hits):
        return False
    anchors = [h for k, lst in hits.items() if k in rule.terms for h in lst]
    if not anchors:
        return False
    for group in rule.with_:
        if not any(k in group for k in hits):
            return False
    blockers = _TokenIndex([h for k, lst in hits.items() if k in rule.unless_near for h in lst]
                           if rule.unless_near else [])
    groups = [_TokenIndex([h for k, lst in hits.items() if k in g for h in lst])
              for g in rule.near]
    for anchor in anchors:
        if blockers and any(_near(anchor, b, rule.unless_window, "any") or b == anchor
                            for b in blockers.around(anchor, rule.unless_window)):
            continue
        if all(any(_near(anchor, c, rule.window, rule.direction)
                   for c in grp.around(anchor, rule.window)) for grp in groups):
            if rule.with_ and not all(
                    any(h != anchor for k, lst in hits.items() if k in g for h in lst)
                    for g in rule.with_):
                continue
            return True
    return False


# --- loading -----------------------------------------------------------------------------


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ConfigurationError(f"{where} must be a string or a list, got {type(value).__name__}")


def _expand(items: Iterable[str], lists: Mapping[str, list[str]], where: str) -> frozenset[str]:
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"{where}: terms must be strings, got {item!r}")
        if item.startswith("@"):
            name = item[1:]
            if name not in lists:
                raise ConfigurationError(f"{where}: unknown lexicon list {item!r}")
            out.update(lists[name])
        else:
            out.add(item)
    return frozenset(out)


def _groups(value: Any, lists: Mapping[str, list[str]], where: str) -> tuple[frozenset[str], ...]:
    items = _as_list(value, where)
    if not items:
        return ()
    if all(isinstance(i, list) for i in items):
        return tuple(_expand(i, lists, where) for i in items)
    return (_expand(items, lists, where),)


def _kinds(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    kinds = frozenset(_as_list(value, where))
    bad = sorted(kinds - set(KINDS))
    if bad:
        raise ConfigurationError(f"{where}: unknown text kinds {bad}; known: {list(KINDS)}")
    return kinds


_RULE_KEYS = {"id", "terms", "near", "window", "direction", "with", "unless_near",
              "unless_window", "unless_any", "kinds", "why"}


def _rule(raw: Mapping[str, Any], lists: Mapping[str, list[str]], cat: str) -> Rule:
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise ConfigurationError(f"a rule of category {cat!r} has no id")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise ConfigurationError(f"rule {rid!r}: unknown keys {unknown}")
    direction = raw.get("direction", "any")
    if direction not in _DIRECTIONS:
        raise ConfigurationError(f"rule {rid!r}: direction must be one of {_DIRECTIONS}")
    terms = _expand(_as_list(raw.get("terms"), rid), lists, rid)
    if not terms:
        raise ConfigurationError(f"rule {rid!r} has no terms")
    return Rule(
        id=rid, terms=terms, near=_groups(raw.get("near"), lists, rid),
        window=int(raw.get("window", 4)), direction=direction,
        with_=_groups(raw.get("with"), lists, rid),
        unless_near=_expand(_as_list(raw.get("unless_near"), rid), lists, rid),
        unless_window=int(raw.get("unless_window", 2)),
        unless_any=_expand(_as_list(raw.get("unless_any"), rid), lists, rid),
        kinds=_kinds(raw.get("kinds"), rid), why=str(raw.get("why", "")))


def _resolve_lists(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """Expand ``@name`` references between lexicon lists (any order, no cycles)."""
    done: dict[str, list[str]] = {}

    def resolve(name: str, stack: tuple[str, ...]) -> list[str]:
        if name in done:
            return done[name]
        if name in stack:
            raise ConfigurationError(f"lexicon lists refer to each other in a cycle: {stack}")
        if name not in raw:
            raise ConfigurationError(f"unknown lexicon list @{name}")
        out: list[str] = []
        for item in _as_list(raw[name], f"lexicon.{name}"):
            if not isinstance(item, str):
                raise ConfigurationError(f"lexicon.{name}: terms must be strings, got {item!r}")
            out.extend(resolve(item[1:], (*stack, name)) if item.startswith("@") else [item])
        done[name] = out
        return out

    for name in raw:
        resolve(name, ())
    return done


def _parse(data: Mapping[str, Any], source: str) -> Policy:
    meta = data.get("policy")
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), str):
        raise ConfigurationError(f"{source}: [policy] version = \"...\" is required")
    lists_raw = data.get("lexicon", {})
    if not isinstance(lists_raw, dict):
        raise ConfigurationError(f"{source}: [lexicon] must be a table of term lists")
    lists = _resolve_lists(lists_raw)
    masks = _expand(_as_list(data.get("benign", {}).get("phrases"), "benign.phrases"),
                    lists, "benign.phrases")
    cats_raw = data.get("categories")
    if not isinstance(cats_raw, dict) or not cats_raw:
        raise ConfigurationError(f"{source}: no [categories.*] tables")
    order = meta.get("order", list(cats_raw))
    if sorted(order) != sorted(cats_raw):
        raise ConfigurationError(f"{source}: policy.order must list every category once")
    categories = []
    for name in order:
        raw = cats_raw[name]
        rules = tuple(_rule(r, lists, name) for r in raw.get("rules", []))
        if not rules:
            raise ConfigurationError(f"{source}: category {name!r} has no rules")
        categories.append(Category(
            name=name, description=str(raw.get("description", name)),
            configurable=bool(raw.get("configurable", True)),
            enabled=bool(raw.get("enabled", True)),
            kinds=_kinds(raw.get("kinds"), name) or frozenset(KINDS), rules=rules))
    ids = [r.id for c in categories for r in c.rules]
    if len(ids) != len(set(ids)):
        raise ConfigurationError(f"{source}: rule ids must be unique")
    for cat in categories:
        if not cat.configurable and not cat.enabled:
            raise ConfigurationError(f"{source}: category {cat.name!r} is not configurable "
                                     "and cannot be disabled")
    all_terms: set[str] = set()
    for cat in categories:
        for r in cat.rules:
            all_terms |= r.terms | r.unless_near | r.unless_any
            for g in (*r.near, *r.with_):
                all_terms |= g
    return Policy(version=meta["version"], categories=tuple(categories),
                  log_prompts=bool(meta.get("log_prompts", False)), source=source,
                  lexicon=Lexicon(all_terms, masks))


@functools.lru_cache(maxsize=1)
def _default_policy() -> Policy:
    text = resources.files("vidgen.safety").joinpath("policies/default.toml").read_text("utf-8")
    return _parse(tomllib.loads(text), "default")


def load_policy(path: str | Path | None = None, *,
                overrides: Mapping[str, bool] | None = None,
                log_prompts: bool | None = None) -> Policy:
    """Load a policy file (default: the packaged one, cached) and apply overrides.

    ``overrides`` switches configurable categories on (``True``) or off (``False``);
    switching off a category that is not configurable (``minors_sexual``) raises
    ``ConfigurationError``, as does an unknown category name.
    """
    if path is None:
        policy = _default_policy()
    else:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read prompt policy {p}: {exc}") from exc
        policy = _parse(data, str(p))
    if overrides or log_prompts is not None:
        policy = policy.with_overrides(overrides, log_prompts=log_prompts)
    return policy


# --- checking ----------------------------------------------------------------------------


def check_prompt(text: str, policy: Policy | None = None, *,
                 kind: str = "prompt") -> PromptDecision:
    """Decide whether ``text`` may be generated; log one audit record.

    ``kind`` says what the text is in the request (``prompt``, ``negative_prompt``,
    ``style``, ``edit_instruction``): some rules apply to some kinds only (a negative
    prompt that lists "nudity, gore" steers *away* from them; one that lists
    "clothes, censored" steers towards nudity).
    """
    if kind not in KINDS:
        raise ConfigurationError(f"unknown text kind {kind!r}; known: {list(KINDS)}")
    if not isinstance(text, str):
        raise ConfigurationError(f"prompt text must be a string, got {type(text).__name__}")
    policy = policy if policy is not None else _default_policy()
    fired: list[tuple[Category, list[Rule]]] = []
    if text.strip():
        hits = policy.lexicon.match(normalize(text))
        if hits:
            for cat in policy.categories:
                if not cat.enabled or kind not in cat.kinds:
                    continue
                rules = [r for r in cat.rules
                         if (r.kinds is None or kind in r.kinds) and _fires(r, hits)]
                if rules:
                    fired.append((cat, rules))
    else:
        hits = {}
    if fired:
        cat, rules = fired[0]
        why = "; ".join(dict.fromkeys(r.why for r in rules if r.why))
        decision = PromptDecision(
            allowed=False, category=cat.name,
            reason=f"{cat.description}" + (f" ({why})" if why else ""),
            matched=tuple(r.id for _c, rs in fired for r in rs))
    else:
        decision = PromptDecision(allowed=True, reason="no policy category matched")
    _audit(text, kind, decision, policy, hits)
    return decision


def _audit(text: str, kind: str, decision: PromptDecision, policy: Policy,
           hits: Mapping[str, Any]) -> None:
    level = logging.INFO if decision.allowed else logging.WARNING
    if not _AUDIT.isEnabledFor(level):
        return
    record: dict[str, Any] = {
        "event": "prompt_policy",
        "decision": "allowed" if decision.allowed else "refused",
        "category": decision.category,
        "rules": list(decision.matched),
        "policy_version": policy.version,
        "policy_source": policy.source,
        "kind": kind,
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "chars": len(text),
    }
    if policy.log_prompts:
        record["text"] = text
        record["terms"] = sorted(hits)
        _AUDIT.log(level, "prompt policy %s %s (%s; policy %s; sha256 %s): %r",
                   record["decision"], kind, decision.category or "-", policy.version,
                   record["sha256"][:16], text, extra={"vidgen_audit": record})
    else:
        _AUDIT.log(level, "prompt policy %s %s (%s; policy %s; sha256 %s)",
                   record["decision"], kind, decision.category or "-", policy.version,
                   record["sha256"][:16], extra={"vidgen_audit": record})


@attrs.frozen
class PromptPolicyGate:
    """The policy as a pipeline prompt gate: ``gate(text) -> PromptDecision``.

    ``kind`` is the text kind this gate checks (the pipeline passes bare strings);
    ``check(text, kind=...)`` checks another kind with the same policy.
    """

    policy: Policy = attrs.field(factory=_default_policy)
    kind: str = attrs.field(default="prompt")

    @kind.validator
    def _check_kind(self, _attribute: object, value: str) -> None:
        if value not in KINDS:
            raise ConfigurationError(f"unknown text kind {value!r}; known: {list(KINDS)}")

    def __call__(self, text: str) -> PromptDecision:
        return check_prompt(text, self.policy, kind=self.kind)

    def check(self, text: str, *, kind: str = "prompt") -> PromptDecision:
        return check_prompt(text, self.policy, kind=kind)


__all__ = ["AUDIT_LOGGER", "KINDS", "Category", "Lexicon", "Policy", "PromptPolicyGate", "Rule",
           "check_prompt", "load_policy", "term_hash"]
