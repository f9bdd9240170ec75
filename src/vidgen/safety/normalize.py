"""Canonical forms of request text, so disguised words match the policy lexicon.

Evaders disguise the few words a filter looks for: look-alike letters from other
scripts, invisible characters, leetspeak, letters spaced or punctuated apart,
repeated letters, decomposed Hangul. ``normalize`` undoes each of these and keeps
several forms, because each rule needs a different one:

- ``tokens``: words in order (word-preserving form), each with its canonical
  spellings (``Token.forms``: leet read two ways, repeated letters collapsed);
  runs of single letters (``n u d e``, ``k.i.l.l``) are joined into one token;
- ``compounds``: pieces of one whitespace-delimited chunk glued back together
  (``deep-fake`` -> ``deepfake``), with the token span they cover;
- ``squashed``: every letter of the text, no separators, repeats collapsed, for the
  few long terms that are safe to find anywhere (``d e e p f a k e``, ``de ep fake``);
- ``hangul``: only the Hangul syllables, concatenated: Korean attaches particles to
  words and spacing is free, so Korean terms are found as substrings of this form
  (``딥 페 이 크`` and ``딥페이크를`` both contain ``딥페이크``);
- ``words`` / ``canonical`` / ``cased``: the tokens joined by single spaces, as typed
  (lower-cased) / in canonical spelling / with the original case, for the few
  regular-expression rules (ages, capitalised names).

The same function canonicalises the lexicon's terms (``canonical_term``), so a term
and a disguised spelling of it meet in the same form.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable

import attrs

# --- character tables ------------------------------------------------------------------

# Look-alikes of Latin letters in Cyrillic, Greek and a few other blocks that NFKC leaves
# alone. Mapped to the Latin letter they imitate; applied after case folding.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ү": "y", "ѵ": "v", "ѡ": "w",
    "ъ": "b", "ь": "b", "г": "r", "п": "n", "и": "u", "л": "n", "д": "d", "з": "3",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "μ": "u",
    "ς": "s", "σ": "o", "θ": "o", "λ": "l", "π": "n",
    # Latin extensions, small capitals and IPA letters that NFKC does not fold
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ß": "ss",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ɑ": "a", "ɩ": "i", "ɵ": "o", "ʋ": "u",
    # Armenian and Cherokee letters commonly used as look-alikes
    "օ": "o", "ս": "u", "ո": "n", "հ": "h", "ց": "g", "ք": "p",
}

# Digits read as letters inside a word that has letters ("k1ll", "n00d"); 1 is read
# both as i and as l, so a token can have two leet spellings.
_LEET_DIGITS = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                              "8": "b", "9": "g"})
_LEET_DIGITS_ALT = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t",
                                  "8": "b", "9": "g"})
# Symbols read as letters when they sit inside a word ("k!ll", "$uicide", "p@rn").
_LEET_SYMBOLS = {"@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "¡": "i"}
# "!" ends sentences: only a letter on its right makes it a leet "i".
_SENTENCE_SYMBOLS = frozenset("!")

# Hangul compatibility jamo in the standard orders of initial, medial and final.
_CHO = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_JUNG = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_JONG = ("", "ㄱ", "ㄲ", "ㄳ", "ㄴ", "ㄵ", "ㄶ", "ㄷ", "ㄹ", "ㄺ", "ㄻ", "ㄼ", "ㄽ", "ㄾ",
         "ㄿ", "ㅀ", "ㅁ", "ㅂ", "ㅄ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅊ", "ㅋ", "ㅌ", "ㅍ", "ㅎ")
_CHO_IDX = {c: i for i, c in enumerate(_CHO)}
_JUNG_IDX = {c: i for i, c in enumerate(_JUNG)}
_JONG_IDX = {c: i for i, c in enumerate(_JONG) if c}
_VOWEL_PAIRS = {("ㅗ", "ㅏ"): "ㅘ", ("ㅗ", "ㅐ"): "ㅙ", ("ㅗ", "ㅣ"): "ㅚ", ("ㅜ", "ㅓ"): "ㅝ",
                ("ㅜ", "ㅔ"): "ㅞ", ("ㅜ", "ㅣ"): "ㅟ", ("ㅡ", "ㅣ"): "ㅢ"}
_FINAL_PAIRS = {("ㄱ", "ㅅ"): "ㄳ", ("ㄴ", "ㅈ"): "ㄵ", ("ㄴ", "ㅎ"): "ㄶ", ("ㄹ", "ㄱ"): "ㄺ",
                ("ㄹ", "ㅁ"): "ㄻ", ("ㄹ", "ㅂ"): "ㄼ", ("ㄹ", "ㅅ"): "ㄽ", ("ㄹ", "ㅌ"): "ㄾ",
                ("ㄹ", "ㅍ"): "ㄿ", ("ㄹ", "ㅎ"): "ㅀ", ("ㅂ", "ㅅ"): "ㅄ"}
# Conjoining jamo that NFKC could not compose (e.g. a final written as an initial).
_CONJOINING_TO_COMPAT = {
    **{chr(0x1100 + i): c for i, c in enumerate(_CHO)},
    **{chr(0x1161 + i): c for i, c in enumerate(_JUNG)},
    **{chr(0x11A8 + i): c for i, c in enumerate(_JONG[1:])},
}
_SYLLABLE_BASE, _SYLLABLE_END = 0xAC00, 0xD7A3

_TRIPLED = re.compile(r"(.)\1\1")
LOOSE = "\x00"  # marks a loose form: every run of a letter cut to one
_DEDUP1 = re.compile(r"(.)\1+")
_DEDUP2 = re.compile(r"(.)\1{2,}")
_JAMO_GAP = re.compile(r"(?<=[\u3131-\u318e])[\s.\-_*·,~/\\|+'\"`^:;]+(?=[\u3131-\u318e])")
_MIN_JOIN_RUN = 3  # "n u d e" joins; "a b" does not


def is_hangul(ch: str) -> bool:
    """True for a precomposed Hangul syllable."""
    return _SYLLABLE_BASE <= ord(ch) <= _SYLLABLE_END


def dedup(text: str) -> str:
    """Collapse every run of one character to a single character (``kiiill`` -> ``kil``)."""
    return _DEDUP1.sub(r"\1", text)


def dedup2(text: str) -> str:
    """Collapse runs of three or more to two (keeps ``xxx`` distinct from ``x``)."""
    return _DEDUP2.sub(r"\1\1", text)


# --- Hangul ----------------------------------------------------------------------------


def compose_jamo(text: str) -> str:
    """Compose runs of Hangul compatibility jamo into syllables (``ㄷㅣㅂ`` -> ``딥``).

    Separators between two jamo are dropped first (``ㄷ ㅣ ㅂ``): free-standing jamo
    sequences are rare in ordinary Korean (``ㅋㅋ``, ``ㅠㅠ``) and dropping the gaps
    there changes nothing that matters to the lexicon.
    """
    if not any("\u3131" <= c <= "\u318e" for c in text):
        return text
    text = _JAMO_GAP.sub("", text)
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _CHO_IDX and i + 1 < n and text[i + 1] in _JUNG_IDX:
            lead, vowel, j = c, text[i + 1], i + 2
            if j < n and (vowel, text[j]) in _VOWEL_PAIRS:
                vowel, j = _VOWEL_PAIRS[(vowel, text[j])], j + 1
            final = ""
            if j < n and text[j] in _JONG_IDX and not (j + 1 < n and text[j + 1] in _JUNG_IDX):
                final, j = text[j], j + 1
                if (j < n and (final, text[j]) in _FINAL_PAIRS
                        and not (j + 1 < n and text[j + 1] in _JUNG_IDX)):
                    final, j = _FINAL_PAIRS[(final, text[j])], j + 1
            out.append(_syllable(lead, vowel, final))
            i = j
            continue
        if (c in _JONG_IDX and out and is_hangul(out[-1])
                and (ord(out[-1]) - _SYLLABLE_BASE) % 28 == 0
                and not (i + 1 < n and text[i + 1] in _JUNG_IDX)):
            out[-1] = chr(ord(out[-1]) + _JONG_IDX[c])  # "디" + "ㅂ" -> "딥"
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _syllable(lead: str, vowel: str, final: str) -> str:
    code = (_CHO_IDX[lead] * 21 + _JUNG_IDX[vowel]) * 28 + (_JONG_IDX[final] if final else 0)
    return chr(_SYLLABLE_BASE + code)


# --- character-level cleaning ----------------------------------------------------------


def clean(text: str) -> str:
    """NFKC, Hangul recomposed, invisible and combining characters removed, look-alikes
    mapped to Latin. Case is kept (capitalised-name rules need it)."""
    if text.isascii():
        # ASCII is already NFKC, has no look-alikes, invisible characters or marks
        return "".join(" " if c < " " or c == "\x7f" else c for c in text) if not (
            text.isprintable()) else text
    text = unicodedata.normalize("NFKC", text)
    if any("\u1100" <= c <= "\u11ff" for c in text):
        text = "".join(_CONJOINING_TO_COMPAT.get(c, c) for c in text)
    text = compose_jamo(text)
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        cat = unicodedata.category(ch)
        if cat in ("Cf", "Mn", "Me", "Cc", "Co", "Cn", "Cs"):
            if ch in "\t\n\r":
                out.append(" ")
            continue  # zero-width, bidi controls, soft hyphen, diacritics, selectors
        if cat == "So":
            continue  # emoji and pictographs inserted inside words
        low = ch.lower()
        mapped = _CONFUSABLES.get(low)
        if mapped is not None:
            out.append(mapped.upper() if ch != low and len(mapped) == 1 else mapped)
        else:
            out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _map_leet_symbols(text: str) -> str:
    """Replace leet symbols that sit inside a word by the letter they stand for."""
    if not any(c in _LEET_SYMBOLS for c in text):
        return text
    chars = list(text)
    n = len(chars)

    def wordy(k: int) -> bool:
        return 0 <= k < n and (chars[k].isalnum() or chars[k] in _LEET_SYMBOLS)

    for k, c in enumerate(chars):
        letter = _LEET_SYMBOLS.get(c)
        if letter is None:
            continue
        if wordy(k + 1) or (c not in _SENTENCE_SYMBOLS and wordy(k - 1)):
            chars[k] = letter
    return "".join(chars)


# --- tokens ----------------------------------------------------------------------------


@attrs.frozen
class Token:
    """One word: its canonical spellings, its text as typed (lower-cased) and position."""

    forms: frozenset[str]
    raw: str
    cased: str
    hangul: bool
    joined: bool = False  # made from a run of single letters ("n u d e")


@attrs.frozen
class Compound:
    """The pieces of one whitespace-delimited chunk glued together (``deep-fake``)."""

    forms: frozenset[str]
    first: int
    last: int


@attrs.frozen(eq=False)
class NormalizedText:
    """Every form of one text the rules match against; see the module docstring."""

    tokens: tuple[Token, ...]
    compounds: tuple[Compound, ...]
    squashed: str
    squashed_index: tuple[int, ...]
    hangul: str
    hangul_index: tuple[int, ...]
    words: str
    words_starts: tuple[int, ...]
    canonical: str
    canonical_starts: tuple[int, ...]
    cased: str
    cased_starts: tuple[int, ...]

    def token_at(self, offset: int, form: str = "words") -> int:
        """Index of the token covering a character offset of ``words``, ``canonical``
        or ``cased``."""
        starts = {"words": self.words_starts, "canonical": self.canonical_starts,
                  "cased": self.cased_starts}[form]
        return max(0, bisect_right(starts, offset) - 1)


def token_forms(raw: str) -> frozenset[str]:
    """Canonical spellings of one lower-cased token.

    Leet is read two ways (1 as i and as l) besides the token as typed; runs of three or
    more letters are cut to two, which leaves every ordinary word as it is ("shoot",
    "teen", "kill"). A token that has such a run was disguised, so it also gets *loose*
    forms (``LOOSE`` + every run cut to one letter) that meet the loose forms of the
    terms: "kiiiill" matches "kill" without "shot" matching "shoot".
    """
    if not any(c.isalpha() for c in raw):
        # "945" may be leet for "gas" next to a disguised word; numbers keep their digits too
        if len(raw) < 2 or not raw.isdigit():
            return frozenset({raw})
        return frozenset({raw, raw.translate(_LEET_DIGITS), raw.translate(_LEET_DIGITS_ALT)})
    primary = raw.translate(_LEET_DIGITS)
    if primary == raw and not _TRIPLED.search(raw):
        return frozenset({raw})  # the common case: a plain word
    variants = {primary, raw}
    if "1" in raw:
        variants.add(raw.translate(_LEET_DIGITS_ALT))
    forms = {dedup2(v) for v in variants}
    if any(_TRIPLED.search(v) for v in variants):
        forms.update(LOOSE + dedup(v) for v in variants)
    return frozenset(forms)


def loose(form: str) -> str:
    """The loose form of a canonical spelling (see ``token_forms``)."""
    return LOOSE + dedup(form)


def primary_form(raw: str) -> str:
    """The one canonical spelling used for terms and the canonical words."""
    if not any(c.isalpha() for c in raw):
        return raw  # numbers keep their digits: "11" is not "1"
    primary = raw.translate(_LEET_DIGITS)
    return dedup2(primary) if _TRIPLED.search(primary) else primary


def _split(text: str) -> list[tuple[str, int, bool]]:
    """Pieces of text as (piece, chunk number, is_hangul); chunks are whitespace-delimited."""
    pieces: list[tuple[str, int, bool]] = []
    chunk = 0
    cur: list[str] = []
    cur_hangul = False

    def flush() -> None:
        if cur:
            pieces.append(("".join(cur), chunk, cur_hangul))
            cur.clear()

    for ch in text:
        if ch.isspace():
            flush()
            chunk += 1
        elif ch.isalnum():
            h = is_hangul(ch) or "\u3131" <= ch <= "\u318e"
            if cur and h != cur_hangul:
                flush()
            cur_hangul = h
            cur.append(ch)
        else:
            flush()  # punctuation splits words but not chunks
    flush()
    return pieces


def _join_single_letters(pieces: list[tuple[str, int, bool]]) -> list[tuple[str, int, bool, bool]]:
    """Glue runs of >= 3 one-letter Latin pieces into one (``n u d e`` -> ``nude``).

    Letters split by punctuation inside one chunk (``k.i.l.l``) join within that chunk;
    letters split by spaces (``n u d e``) join across chunks of one letter each. So
    ``a m.i.n.o.r`` gives ``a`` + ``minor`` and ``e.x.p.l.i.c.i.t s.e.x`` two words.
    """
    chunk_size: dict[int, int] = {}
    for _piece, chunk, _h in pieces:
        chunk_size[chunk] = chunk_size.get(chunk, 0) + 1

    def letter(k: int) -> bool:
        return len(pieces[k][0]) == 1 and not pieces[k][2]

    out: list[tuple[str, int, bool, bool]] = []
    i, n = 0, len(pieces)
    while i < n:
        j = i
        if letter(i):
            multi = chunk_size[pieces[i][1]] > 1
            j = i + 1
            while j < n and letter(j) and (
                    pieces[j][1] == pieces[i][1] if multi
                    else chunk_size[pieces[j][1]] == 1):
                j += 1
        if j - i >= _MIN_JOIN_RUN:
            out.append(("".join(p[0] for p in pieces[i:j]), pieces[i][1], False, True))
            i = j
            continue
        piece, chunk, hangul = pieces[i]
        out.append((piece, chunk, hangul, False))
        i += 1
    return out


def normalize(text: str) -> NormalizedText:
    """All canonical forms of ``text`` (see the module docstring)."""
    cleaned = _map_leet_symbols(clean(text))
    pieces = _join_single_letters(_split(cleaned))

    tokens: list[Token] = []
    for piece, _chunk, hangul, joined in pieces:
        raw = piece.casefold()
        forms = frozenset({dedup(raw)}) if hangul else token_forms(raw)
        tokens.append(Token(forms=forms, raw=raw, cased=piece, hangul=hangul, joined=joined))

    compounds: list[Compound] = []
    i = 0
    while i < len(pieces):
        j = i
        while j + 1 < len(pieces) and pieces[j + 1][1] == pieces[i][1]:
            j += 1
        if j > i and not any(p[2] for p in pieces[i:j + 1]):
            glued = "".join(t.raw for t in tokens[i:j + 1])
            compounds.append(Compound(forms=token_forms(glued), first=i, last=j))
        i = j + 1

    sq_chars: list[str] = []
    sq_index: list[int] = []
    hg_chars: list[str] = []
    hg_index: list[int] = []
    for k, tok in enumerate(tokens):
        for ch in tok.raw if tok.hangul else primary_form(tok.raw):
            if sq_chars and sq_chars[-1] == ch:
                continue
            sq_chars.append(ch)
            sq_index.append(k)
        if tok.hangul:
            for ch in tok.raw:
                if hg_chars and hg_chars[-1] == ch:
                    continue
                hg_chars.append(ch)
                hg_index.append(k)

    words, words_starts = _join_with_starts(t.raw for t in tokens)
    canonical, canonical_starts = _join_with_starts(
        t.raw if t.hangul else primary_form(t.raw) for t in tokens)
    cased, cased_starts = _join_with_starts(t.cased for t in tokens)
    return NormalizedText(
        tokens=tuple(tokens), compounds=tuple(compounds),
        squashed="".join(sq_chars), squashed_index=tuple(sq_index),
        hangul="".join(hg_chars), hangul_index=tuple(hg_index),
        words=words, words_starts=words_starts, canonical=canonical,
        canonical_starts=canonical_starts, cased=cased, cased_starts=cased_starts)


def _join_with_starts(parts: Iterable[str]) -> tuple[str, tuple[int, ...]]:
    starts: list[int] = []
    pos = 0
    out: list[str] = []
    for p in parts:
        starts.append(pos)
        out.append(p)
        pos += len(p) + 1
    return " ".join(out), tuple(starts)


def canonical_term(term: str) -> list[tuple[str, bool]]:
    """A lexicon term as canonical token patterns: [(text, is_prefix)].

    ``kill*`` is a prefix pattern. Latin pieces keep their spelling (leet read, runs of
    three or more letters cut to two); Hangul terms are one pattern with the spaces
    removed and repeated syllables collapsed (matched as a substring of the Hangul form).
    """
    cleaned = clean(term)
    if any(is_hangul(c) for c in cleaned):
        return [(dedup("".join(c for c in cleaned if is_hangul(c))), False)]
    out: list[tuple[str, bool]] = []
    for word in cleaned.split():
        prefix = word.endswith("*")
        pieces = [p for p, _chunk, _h in _split(_map_leet_symbols(word.rstrip("*")))]
        for k, piece in enumerate(pieces):
            raw = piece.casefold()
            form = raw if any(c.isdigit() for c in raw) else primary_form(raw)  # "c4", "1488"
            out.append((form, prefix and k == len(pieces) - 1))
    return out
