"""Request analysis: what a chat request asks for (task type), how hard it is (complexity 0..1),
and what a model must support to answer it (tools, vision, JSON).

Deliberately cheap and explainable: weighted cue patterns plus structural signals (code fences,
equations, numbers in a question, pasted documents, numbered steps, tool definitions). Every score
comes back with the features behind it, so the explainer can show why a request was read the way it was.

The last user message decides the task, and within it the *ask* decides, not the material it comes
with: "Extract the totals as JSON:" followed by an invoice is extraction however many numbers the
invoice holds. So the message is split into the ask (a short opening or closing paragraph, or the
whole message when it is one short block) and the document (pasted text, quoted passages, code
fences). Cues in the document, the system prompt and earlier turns count for a fraction of their
weight; earlier turns count more when the ask is a follow-up ("now in Italian"), and the system prompt
counts fully when the user message is only material for the task it sets ("Translate whatever the
user sends"). A document in another language than the ask points at translation.

Cues are vocabulary lists (looked up in a word set) plus a few regular expressions, all bounded, so a
typical request takes a fraction of a millisecond and a 200 KB one a few tens of milliseconds at most.
The cue lists were tuned on tests/data/task_prompts_dev.jsonl; tests/selection/test_analysis.py keeps
an accuracy floor on it.
"""

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models_registry.choices import TaskType
from selection.literals import FilteredPattern, LiteralIndex

# A class needs at least this much evidence to beat the "chat" default.
MIN_TASK_SCORE = 1.0

# How much a cue counts outside the ask. The system prompt sets the job for every turn; earlier turns
# matter when the ask is a follow-up ("now in Italian", "shorter please") and little otherwise.
DOCUMENT_WEIGHT = 0.2
SYSTEM_WEIGHT = 0.5
FOLLOW_UP_WEIGHT = 0.5
CONTEXT_WEIGHT = 0.15
# Summarizing or extracting needs something to work on: with no document and no earlier turns,
# "find all files over 100MB" is not an extraction request.
NO_MATERIAL_FACTOR = 0.6

# Cue scopes: where a cue may be found. Numbers in a pasted invoice are not a maths question, and
# "thanks" in a pasted email is not small talk.
EVERYWHERE, NOT_IN_DOCUMENT, ASK_ONLY = "everywhere", "not-in-document", "ask-only"
_SCOPE_SOURCES = {
    ASK_ONLY: {ASK_ONLY},
    NOT_IN_DOCUMENT: {ASK_ONLY, NOT_IN_DOCUMENT},
    EVERYWHERE: {ASK_ONLY, NOT_IN_DOCUMENT, EVERYWHERE},
}

# Long inputs are scanned in a head and a tail, so the cost stays bounded: the last user message up to
# 8k characters, and the pasted document, the system prompt and each earlier turn up to 3k, since
# their cues count for little.
SCAN_HEAD, SCAN_TAIL = 6_000, 2_000
CONTEXT_HEAD, CONTEXT_TAIL = 2_000, 1_000
# An opening or closing paragraph this short can be the ask around a pasted document.
ASK_MAX_WORDS = 60


# What the vocabulary lists are made of: words (with inner apostrophes), and the characters that make an
# alternative a regular expression instead of a list of words.
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
REGEX_CHARS = re.compile(r"[\\()\[\]{}?*+.^$]")
UNSPACED_SCRIPT = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
# The literals cue patterns need, so a text is searched for all of them at once.
CUE_LITERALS = LiteralIndex()


class CueWordIndex:
    """Every cue's words and phrases, filed by word: which cues a text's words match is then found in
    one pass over the words the text shares with any cue, instead of a set test per cue and text
    (a request checks some 70 cue x text pairs)."""

    def __init__(self):
        self._cues_by_word: dict[str, set[int]] = {}
        # Phrases are filed under their longest word, the one least likely to be in any text, and
        # kept padded with spaces so that `in` matches whole words only.
        self._phrases_by_word: dict[str, list[tuple[str, int]]] = {}
        self._keys: frozenset[str] = frozenset()
        self._count = 0

    def add(self, words: set[str], phrases: list[list[str]]) -> int:
        """File a cue's words and phrases (each a list of lower-cased tokens); returns its number."""
        number = self._count
        self._count += 1
        for word in words:
            self._cues_by_word.setdefault(word, set()).add(number)
        for tokens in phrases:
            key = max(tokens, key=len)
            self._phrases_by_word.setdefault(key, []).append((f" {' '.join(tokens)} ", number))
        self._keys = frozenset(self._cues_by_word) | frozenset(self._phrases_by_word)
        return number

    def cues_in(self, text: "_Text") -> frozenset[int]:
        """The numbers of the cues one of whose words or phrases `text` holds."""
        found: set[int] = set()
        for word in text.words & self._keys:
            found.update(self._cues_by_word.get(word, ()))
            for phrase, number in self._phrases_by_word.get(word, ()):
                if number not in found and phrase in text.padded:
                    found.add(number)
        return frozenset(found)


CUE_WORDS = CueWordIndex()


class Cue:
    """A weighted set of alternatives: plain words and phrases ("pros and cons"), matched as whole
    words through a token set, and regular expressions for everything else, on lower-cased text.

    Word lists are looked up rather than run as regex alternations, which keeps a request at a fraction
    of a millisecond: all cues' words are in one index (CUE_WORDS) that each text is looked up in once.
    Words in scripts written without spaces (Chinese, Japanese, Korean, Thai) are matched as
    substrings."""

    __slots__ = ("_number", "_substrings", "pattern", "scope", "weight")

    def __init__(self, weight: float, *alternatives: str, scope: str = EVERYWHERE):
        self.weight = weight
        self.scope = scope
        words: set[str] = set()
        phrases: list[list[str]] = []
        substrings: list[str] = []
        patterns: list[str] = []
        for alternative in alternatives:
            if REGEX_CHARS.search(alternative):
                patterns.append(alternative)
                continue
            for term in alternative.split("|"):
                if UNSPACED_SCRIPT.search(term):
                    substrings.append(term)
                    continue
                tokens = TOKEN.findall(term.lower())
                if len(tokens) == 1:
                    words.add(tokens[0])
                elif tokens:
                    phrases.append(tokens)
        self._number = CUE_WORDS.add(words, phrases)
        self._substrings = tuple(substrings)
        self.pattern = FilteredPattern("|".join(patterns), CUE_LITERALS) if patterns else None

    def matches(self, text: "_Text") -> bool:
        if self._number in text.word_cues:
            return True
        for substring in self._substrings:
            if substring in text.raw:
                return True
        return self.pattern is not None and self.pattern.search(text.raw, text.met)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _combine(firsts: str, seconds: str) -> str:
    """Every "first second" phrase: _combine("in|into", "french|german") -> "in french|in german|..."."""
    return "|".join(f"{a} {b}" for a in firsts.split("|") for b in seconds.split("|"))


class _Text:
    """Lower-cased text with its words, so that word-list cues are set lookups."""

    __slots__ = ("_language", "_met", "_word_cues", "padded", "raw", "words")

    def __init__(self, text: str):
        self.raw = text.lower()
        tokens = TOKEN.findall(self.raw)
        self.words = frozenset(tokens)
        self.padded = f" {' '.join(tokens)} "
        self._language: str | None = ""
        self._met: frozenset[int] | None = None
        self._word_cues: frozenset[int] | None = None

    @property
    def word_cues(self) -> frozenset[int]:
        """The cues this text matches by a word or phrase (CUE_WORDS)."""
        if self._word_cues is None:
            self._word_cues = CUE_WORDS.cues_in(self)
        return self._word_cues

    @property
    def met(self) -> frozenset[int]:
        """The literal conditions of cue patterns this text meets."""
        if self._met is None:
            self._met = CUE_LITERALS.met_in(self.raw)
        return self._met

    @property
    def language(self) -> str | None:
        """The language the text is written in, when it is clear: a script, or the most frequent
        function words by a margin."""
        if self._language == "":
            self._language = _language(self)
        return self._language

    def __bool__(self) -> bool:
        return bool(self.raw)


LANGUAGES = (
    "english|french|german|spanish|italian|portuguese|japanese|chinese|mandarin|cantonese|korean|russian|"
    "arabic|hindi|dutch|polish|turkish|swedish|norwegian|danish|finnish|vietnamese|thai|greek|hebrew|"
    "ukrainian|indonesian|malay|czech|romanian|hungarian|persian|farsi|urdu|bengali|tagalog|swahili|catalan|"
    "latin"
)
# Language names as people write them in other languages ("ins Englische", "en inglés", "на английский").
FOREIGN_LANGUAGE_NAMES = (
    "inglés|ingles|inglês|anglais|englisch|englische|englischen|engels|engelska|inglese|английский|"
    "английского|англійською|англійську|tiếng anh|espagnol|spanisch|spanische|español|espanhol|spagnolo|"
    "französisch|französische|français|francais|francés|frances|francese|deutsch|deutsche|alemán|aleman|"
    "allemand|tedesco|japonais|japanisch|japonés|giapponese|chinois|chinesisch|italienisch|italiano|italien|"
    "russisch|ruso|russe|portugiesisch|portugués|українською|русский|русском|немецкий|французский|испанский|"
    "английский|итальянский|китайский|японский"
)

# A question to the assistant about itself is conversation, whatever the earlier turns were about.
PERSONAL = Cue(
    3.0,
    r"\b(?:do|did|have|are|would|were) you (?:ever|actually|really|like|enjoy|feel|remember|prefer|dream|"
    r"get (?:tired|bored)|been)\b",
    "how are you|how's it going|what's up|what's good|nice to meet you|who are you|are you a bot|"
    "are you human",
    scope=ASK_ONLY,
)
# A short "thanks, that was great" reacts to the last answer rather than asking for more of it.
GRATITUDE = re.compile(
    r"\b(?:thanks|thank you|thx|ty|cheers|appreciate it|made my day|you're the best|you rock|perfect|"
    r"awesome|brilliant|merci|danke|gracias|obrigad[oa]|grazie)\b"
)

# Locale tags ("pt-BR", "es_MX") as "pt-|pt_|...": literals of 3 characters, so that FilteredPattern
# runs the locale cue only on texts holding one (a class like [-_] gives it nothing to look for).
LOCALE_CODES = ("pt", "es", "fr", "de", "it", "ja", "zh", "ko")
LOCALE_PREFIXES = "|".join(f"{code}{separator}" for code in LOCALE_CODES for separator in "-_")

# Cues per task type; the weights say how strongly a cue alone points at the class: "translate" is
# nearly decisive, "compare" is not. Chat is the default, but it has cues too, so that small talk about
# a poem or a language is not read as a task.
TASK_CUES: dict[str, list[Cue]] = {
    TaskType.CHAT: [
        PERSONAL,
        Cue(
            1.5,
            r"^\W*(?:hi|hello|hey|yo|thanks|thank you|thx|cheers|good (?:morning|afternoon|evening|night)|"
            r"bonjour|salut|hola|ciao|hallo|moin|oi|ol[aá]|merci|danke|gracias|obrigad[oa])\b",
            "qué tal|que tal|cómo estás|como estas|wie geht's|wie gehts|comment ça va|come stai|tudo bem",
            scope=ASK_ONLY,
        ),
        Cue(
            1.1,
            "any tips|some tips|any advice|some advice|any ideas|any recommendations|any suggestions|"
            "tips for|tips on|advice|recommend me|recommend a|recommend some|what's a good|where can i|"
            "do you think|is it safe|is it normal|is it ok|is it okay|is it bad|is it healthy|is it legal|"
            "is it rude|is it weird|is it worth|thoughts on|what do you think of|what do you think about|"
            "your opinion|your favourite|your favorite|your take on|in simple terms|eli5|like i'm five|"
            "like i'm 10|like i'm a kid|refund|charged twice|cancel my subscription|cancel my account|"
            "cancel my order|reset my password|reset password|student discount|opening hours|conseiller|"
            "conseille|conseils|recomiendas|recomiéndame|consejo|consejos|empfiehlst|empfehlen|empfehlung|"
            "consigli|consigliare",
            r"\bwhat should i (?:pack|wear|bring|eat|cook|read|watch|buy|get|say|name)\b",
            r"\bis it (?:still |really )?worth\b",
            r"\b(?:i'm|im|i am|i feel|feeling) (?:so |really |kind of |a bit |pretty |very )?(?:sad|nervous|"
            r"anxious|lonely|stressed|burn(?:ed|t) out|tired|happy|excited|worried|scared|bored|overwhelmed|"
            r"down)\b",
            "おすすめ|推荐|你好|こんにちは|안녕",
            scope=ASK_ONLY,
        ),
    ],
    TaskType.CODE: [
        Cue(
            2.5,
            r"\b(?:write|implement|refactor|debug|fix|optimi[sz]e|review|port|convert|rewrite|generate|"
            r"create|add|make|build)\b[^.?!\n]{0,60}\b(?:code|function|class|method|script|program|query|"
            r"endpoint|regex|loop|snippet|app|bot|crate|package|library|test suite|pipeline|unit tests?|"
            r"module|component|middleware|api|cli|dockerfile|workflow|migration|decorator|hook|handler|"
            r"lambda|cron(?:job)?|makefile|schema|sql)\b",
            r"\b(?:write|add) (?:\w+ )?tests? for\b",
        ),
        Cue(
            1.4,
            "python|javascript|typescript|java|golang|rust|kotlin|swift|ruby|php|bash|zsh|powershell|sql|"
            "postgres|postgresql|mysql|sqlite|mongodb|redis|html|css|react|vue|angular|svelte|django|flask|"
            "fastapi|node|nodejs|express|rails|laravel|dockerfile|docker|kubernetes|k8s|helm|yaml|terraform|"
            "ansible|nginx|pandas|numpy|pytorch|tensorflow|jquery|git|github actions|gitlab ci|awk|sed|grep|"
            "regex|cron|vlookup|xlookup|excel formula|vba|scala|haskell|elixir|perl|lua|dart|flutter|"
            "webpack|vite|npm|pip|cargo|gradle|maven|in go|in rust|in java|in python|in c|in ruby|in js|"
            "in ts|código|función|fonction|funktion|代码|函数|コード|関数|程序|프로그램|코드",
            r"c\+\+|c#|node\.js|\.net\b|用\s*(?:python|java|go|c\+\+|javascript)",
            # regular expression syntax: (?=...), [a-z], \d
            r"\(\?[=!:<]|\[[a-z0-9]-[a-z0-9]|\\[dwsb][+*{]",
        ),
        Cue(
            1.6,
            "stack trace|stacktrace|traceback|segfault|segmentation fault|compiler|compile|compiles|"
            "compiled|syntax error|null pointer|unit test|unit tests|pull request|merge conflict|"
            "api endpoint|regular expression|sql query|infinite loop|race condition|memory leak|deadlock|"
            "exit code|type hint|type hints",
            r"\b(?:commit(?:ted)?|rebase|stash|cherry-pick|branch|checkout)\b[^.?!\n]{0,40}\b(?:git|main|"
            r"master|branch|commit)\b",
            r"\bstatus code \d{3}\b",
        ),
        Cue(
            0.6,
            "function|variable|loop|array|algorithm|recursion|class|method|library|framework|repository|"
            "repo|deploy|deployed|deployment|runtime|async|await|thread|index|indexes|column|server|"
            "container|config|debug|debugging|dict|dictionary|list comprehension|lambda|lambdas|callback|"
            "promise|json|api|sdk|bug|crash|crashes|crashed",
        ),
        Cue(
            1.0,
            "file|files|directory|directories|dir|folder|folders|terminal|command line|shell|script|"
            "disk space",
        ),
        Cue(
            1.4,
            "div|flexbox|css grid|localhost|stdout|stderr|env var|environment variable|http request|"
            "post request|get request|api call|webhook|oauth|jwt|cors|csrf|ssh|vscode|vim|linux|ubuntu|"
            "chmod|sudo|apt get|homebrew|cmake|gcc|jvm|yarn|pnpm|venv|virtualenv|conda|jupyter|one liner|"
            "oneliner|snippet|codebase|operator|null|undefined|nonetype|boolean|string|integer overflow|"
            "usestate|useeffect|test suite|the tests|failing test|failing tests|build fails|"
            "build is failing|migrations",
            r"\b\d+ ?(?:kb|mb|gb|tb)\b|\bport \d{2,5}\b",
        ),
    ],
    TaskType.MATH: [
        Cue(
            1.6,
            r"\b(?:calculat|equation|probabilit)\w*",
            "solve|calculate|compute|evaluate|simplify|factor|factorise|factorize|differentiate|integrate|"
            "derive the formula|work out how much|work out how many|work out how long|resuelve|risolvi|計算|"
            "计算|求解",
            r"\b(?:berechne\w*|rechne\w*|calcul[ae]\w*|r[ée]sou[sd]\w*|вычисл\w*|посчита\w*|реши\w*)",
        ),
        Cue(
            1.4,
            "equation|equations|integral|derivative|matrix|matrices|determinant|probability|probabilities|"
            "expected value|expected number|variance|standard deviation|median|correlation|regression|"
            "sample size|margin of error|confidence interval|confidence level|p value|z test|t test|"
            "chi squared|statistically significant|percentile|polynomial|theorem|primes|logarithm|modulo|"
            "geometric|arithmetic|percent|percentage|fraction|fractions|sum of|limit of|quadratic|triangle|"
            "radius|diameter|circumference|hypotenuse|perimeter|compound interest|compounded|interest rate|"
            "monthly payment|mortgage|induction|irrational|divisible|integers|maximise|maximize|minimise|"
            "minimize|celsius|fahrenheit|miles per gallon|mpg|km h|mph|liter|liters|litre|litres|gallon|"
            "gallons|math|maths|mathematics|probabilidad|probabilité|probabilite|wahrscheinlichkeit|"
            "velocidad media|fläche|flache|umfang|mittelwert|durchschnitt|moyenne|équation|equation|"
            "gleichung|ecuación|ecuacion|rabatt|descuento",
            r"\beigen\w*|\bвероятност|\bуравнени",  # noqa: RUF001
        ),
        Cue(
            1.3,
            "prove that|prove it|prove formally|show that|show by induction|how many|square root|cube root|"
            "factorial|to the power of|raised to|times table|greatest common divisor|least common multiple|"
            "gcd|lcm",
            r"what(?:'s| is) \d|\bis \d+ (?:a )?(?:prime|divisible|even|odd|a square)\b",
            # "x^2", "(a+b)^n": the caret first, then what precedes it, so the regex engine jumps to carets.
            r"\d\s*[+*×÷^=]\s*\(?\d|\d\s+[-/]\s+\(?\d|\d[a-z]\s*[+\-=]|\^(?<=[\w)]\^)[\dx-z(]",  # noqa: RUF001
            r"\\(?:frac|int|sum|sqrt|lim)\b|[∫√∑π≤≥²³]",
            scope=NOT_IN_DOCUMENT,
        ),
        Cue(
            0.7,
            # Common words that are often, not always, about numbers: "what does it mean", "dark mode".
            "mean|mode|average|series|area|volume|chance|chances|odds|prime|formula|dimensions|significant|"
            "significance|integer|equal to|equals|divided by|multiplied by|statistics|statistical",
        ),
        Cue(
            0.7,
            "how much|how long|how far|how fast|how old|how tall|how big|how heavy|what time|what speed|"
            "what rate|what size|at what time|at what speed|at what rate|at what point|wie viel|wieviel|"
            "wie lange|wie weit|wie alt|cuánto|cuánta|cuántos|cuántas|cuanto|combien|quanto|сколько",
            r"\bconvert\b[^.?!\n]{0,30}\b(?:to|into|in)\b",
            scope=NOT_IN_DOCUMENT,
        ),
    ],
    TaskType.REASONING: [
        Cue(
            2.2,
            "puzzle|riddle|brain teaser|brainteaser|logic|logical|deduce|deduction|deductive|paradox|"
            "syllogism|knights and knaves|folgt daraus|daraus folgt|se deduce|il s'ensuit|begründe|"
            "schlussfolgerung|knight and knave|who is lying|who was lying|who is telling the truth|"
            "which one is lying|only one of them|always lie|always lies|always tell the truth|"
            "always tells the truth|which weighs more|what am i|who am i|what can we conclude|"
            "what can you conclude|what can be concluded|what follows|must be true|necessarily true|"
            "valid argument|fallacy",
            # riddles: "What am I?", "The more you take, the more you leave behind."
            r"\bwhat (?:am i|are they|is it|are we)\?\s*$",
            r"\bthe more\b[^.?!]{1,40},? the (?:more|less|fewer)\b",
            r"\bis (?:this|the following|that|my) (?:argument|reasoning|syllogism|inference|"
            r"conclusion) (?:valid|sound|correct)\b",
            r"^\W*what (?:has|have|can|goes|gets|comes|runs|is (?:it|always)) [^?]{3,60}\b(?:but|the more|"
            r"yet|without|never)\b",
            r"\bwho (?:owns|lives|sits|drinks|keeps|has) [^?]{1,60}\?",
            # syllogisms: "if all bloops are razzies and all razzies are lazzies"
            r"\b(?:all|no|some) \w+ are \w+[^.?!]{0,60}\b(?:all|no|some) \w+ are\b",
        ),
        Cue(
            1.8,
            "trade off|trade offs|tradeoff|tradeoffs|pros and cons|pros cons|weigh up|weigh the|"
            "help me decide|help me choose|help me pick|help me think|help me weigh|help me prioritise|"
            "help me prioritize|help me figure out|think it through|think this through|what would you do|"
            "what would you pick|what would you choose|what would you recommend|what should i do|"
            "what should we do|in my position|in my shoes|which would you pick|which would you choose|"
            "which would you recommend|which would you go with|root cause|likely cause|likely causes|"
            "possible cause|possible causes|what could explain|what might explain|what would explain|"
            "what could cause|what might cause|what could be causing|what could be going on|"
            "what could be going wrong|what's going wrong|what is going wrong|why is this happening|"
            "how would i find out|how would we find out|how can i find out|how do i find out|narrow it down|"
            "narrow this down|best order|which order|in what order|meilleur ordre|mejor orden|"
            "what would happen if|what would happen to|which is better|which one is better|"
            "which would be better|which is best|which is smarter|which is the right|is it better to|"
            "is it smarter to|is it wiser to|is it cheaper to|is it worth it to|would it be better to|"
            "is it a good idea to|sollten wir|sollte ich|was spricht dafür|was spricht dagegen|"
            "vor und nachteile|debería|deberíamos|qué harías|ventajas y desventajas|cómo averiguo|"
            "cómo puedo saber|devrais je|devrait on|devrions nous|faut il|meilleure stratégie|"
            "meilleure option|avantages et inconvénients|vale a pena|vale mais a pena|conviene|dovrei|"
            "pro e contro|стоит ли|что лучше|どちらが|べきか|应该选|哪个更好|利弊",
            r"\bhow (?:would|should|could|do|did) (?:you|we|i) (?:approach|tackle|go about|handle|structure|"
            r"plan|organi[sz]e|figure out|decide|prioriti[sz]e)\b",
            r"\bshould (?:i|we|they|a|an|the|my|our)\b[^.?!]{0,80}\bor\b",
            # "Postgres or MongoDB for an app that ...?"
            r"^\W*[\w.+#-]+(?: [\w.+#-]+)? (?:or|vs\.?|versus) [\w.+#-]+(?: [\w.+#-]+)? (?:for|to|in|when|"
            r"if)\b",
            r"\bкак бы (?:вы|ты) \w+",  # noqa: RUF001
        ),
        Cue(
            1.4,
            "plan|planning|itinerary|roadmap|strategy|strategic|prioritise|prioritize|prioritisation|"
            "prioritization|decide|decision|dilemma|a recommendation|your recommendation|"
            "with a recommendation|options|compare|comparison|versus|vs|explain why|explanation|"
            "explanations|implication|implications|consequence|consequences|counterfactual|"
            "minimum number of|fewest number of|maximum number of",
            r"\bwhy (?:did|do|does|would|is|are|has|have|was|were|might|could|can|will|"
            r"should)\b[^?\n]{5,200}\?",
            r"\beither\b[^.?!\n]{3,120}\bor\b",
            "risks of each|pros of each|benefits of each|risks and benefits|what are the risks",
            r"\bhow (?:do|can|could|would|does|did) (?:you|i|we|he|she|they|one) (?:determine|figure out|"
            r"tell|know|identify|guarantee|be sure|work out)\b",
            r"\b(?:each|every) [\w ]{0,25}\ba different\b",
            r"\b(?:why|how)\?\s*$",
            # "Which two do we fix first?"
            r"\b(?:which|what)\b[^.?!\n]{0,40}\b(?:first|next)\?",
        ),
        Cue(
            0.8,
            "step by step|think carefully|think hard|think through|reason|reasoning|reasoned|justify|argue|"
            "argument|arguments|assume|assumption|assumptions|should i|should we|shall i|shall we|"
            "constraint|constraints|can't do|only does|only do|only is|only in|only on|unless",
            r"\bif you\b[^.?!]{3,60},\s*(?:what|who|which|how)\b",
        ),
    ],
    TaskType.SUMMARIZATION: [
        Cue(
            3.0,
            "summary|summarize|summarise|summarized|summarised|summarizing|summarising|tldr|tl dr|tl;dr|"
            "tldw|tl dw|recap|condense|boil it down|boil this down|boil that down|boil them down|"
            "boil these down|key points|key takeaways|key findings|key messages|main points|main takeaways|"
            "main findings|main ideas|main themes|takeaways|gist|executive summary|in a nutshell|"
            "short version|shorter|recurring themes|cliffnotes|cliff notes|sum up|sum it up|sum this up|"
            "sum that up|the upshot|bottom line|what's the verdict|the verdict|wichtigsten punkte|"
            "das wichtigste|lo más importante|puntos clave|l'essentiel|points clés|points principaux|"
            "punti principali|pontos principais|resumo|resuma|resumidamente|要点|ポイント|zusammenfassen|"
            "zusammenfassung|zusammengefasst|resumen|resumir|resúmelo|resúmeme|riassumi|riassunto|"
            "riassumere|sintetiza|sintetize|samenvatting|vat samen|sammanfatta|podsumuj|podsumowanie|кратко|"
            "перескажи|要約|总结|概括|摘要|요약",
            r"\b(?:summar|condens|synops|abridg)\w*",
            r"\b(?:short|shorter|brief|condensed|compact|one[- ](?:paragraph|line|sentence)|"
            r"\d+[- ]word) version\b",
            r"\b(?:in|into) (?:one|two|three|a few|a couple of|\d+) (?:sentences?|bullets?|bullet points|"
            r"lines|words|paragraphs?)\b",
            r"\bfass\w* [^.?!\n]{0,40}\bzusammen\b|\brésum(?:er|ez|e)\b|\bresum(?:er|ez)\b|"
            r"\bresum[ae] (?:este|esta|o|a)\b",
        ),
        Cue(
            1.6,
            "shorten|brief overview|briefly overview|highlights|what's this about|what is this about|"
            "what was this about|what's it about|what is it about|what's it saying|what is it saying|"
            "in plain english|plain language|for my manager|for my boss|for the board|for the exec team|"
            "for my landlord|one line|one paragraph|one sentence|a couple of lines|a couple of sentences|"
            "too long|keep it short|keep it brief|briefs|highlights of|quick overview|briefing|briefings|"
            "what happened|what's the news|what ppl agreed|what people agreed|what everyone agreed|"
            "what they agreed|what we agreed|don't have time to read|no time to read",
            r"\bwhat (?:does|did) (?:this|it|he|she|they) (?:actually )?(?:say|want|mean)\b",
            r"\bwhat did (?:we|they|you) (?:end up |finally )?(?:decid|agree|conclud|settl)\w*",
        ),
    ],
    TaskType.EXTRACTION: [
        Cue(
            2.5,
            r"\b(?:extract|classif|categori[sz])\w*",
            "extract|pull out|pull every|pull all|parse|itemise|itemize|fill in the form|fill out the form|"
            "classify|classification|categorise|categorize|categorisation|categorization|tag each|tag every|"
            "tag them|tag these|tag the|tag this|label each|label every|label them|label these|rate each|"
            "sentiment|which category|which language|which intent|which department|which topic|spam or|"
            "intent of|extrahiere|extrahieren|extrae|extraer|extraire|extrais|estrai|estrarre|clasifica|"
            "clasificar|classifie|classifier|classifiez|klassifiziere|klassifizieren|identifie|identifier|"
            "etiqueta|etiquetar|抽出|提取|抽取|извлеки|классифицируй",
            r"\bnormali[sz]e\b[^.?!\n]{0,40}\binto\b",
            # "all the email addresses and phone numbers", "every date mentioned"
            r"\b(?:all|every|each|any|list of|list the|get me the|give me the)\b(?: the)?(?: \w+)? (?:names|"
            r"dates|emails?|e-mail addresses|email addresses|addresses|phone numbers|numbers|amounts|prices|"
            r"totals|urls|links|companies|people|persons|organi[sz]ations|locations|places|products|skus|"
            r"ids|entities|keywords|quantities|figures|skills|ingredients|items|fields|values|mentions)\b",
            r"\bfor (?:each|every) (?:review|comment|message|email|ticket|item|sentence|line|row|"
            r"transaction|tweet|post|entry|record|product|document)\b",
            r"\bis (?:this|the|each|it) (?:\w+ )?(?:message|email|review|comment|text|ticket|tweet|post|"
            r"sentence|feedback)\b[^?]{0,60}\bor\b",
        ),
        Cue(
            1.8,
            "identify all|identify every|identify each|find all|find every|list all|list every|list each|"
            "as json|as a json|as csv|as a csv|as a table|in a table|into a table|into json|to json|in json|"
            "as yaml|into csv|to csv|as key value|as a spreadsheet|into a spreadsheet|return json|"
            "return only json|give me a table|give me the table|just give me the|tracking number|"
            "invoice number|order number|reference number|booking ref|booking reference|with columns|"
            "with the columns|with fields|with the fields|with keys|tableau|tabla|tabelle|tabela|jsonで|"
            "表格|make a table|create a table|build a table|a table of|for each one|for each of them|"
            "for each of these|for every one|json only|only json|positive or negative|"
            "positive negative or neutral|which of these",
            r"\b(?:into|to|as) (?:a |an )?(?:\w+ )?(?:json|csv|yaml|xml)\b",
            r"\b(?:json|csv|table|spreadsheet) (?:with|of|containing) (?:the )?(?:columns?|fields?|keys?|"
            r"headers?|[\w ]{1,20},)",
            r"\b(?:columns?|fields?|keys?)\s?[:=]",
            r"\bwhat(?:'s| is| are) the\b[^.?!\n]{0,50}\b(?:in|on|from|mentioned in|stated in) (?:this|"
            r"these|the|that) (?:email|text|message|letter|document|invoice|article|note|receipt|post|bill|"
            r"statement|contract|order|form|page|report|ad|listing|ticket|booking|confirmation)\b",
            r"\b(?:positive|negative|neutral|angry|happy|urgent)\b,? (?:\w+,? )?or (?:positive|negative|"
            r"neutral|angry|happy|urgent|not)\b",
            r"\b(?:sort|group|bucket|split|put|organi[sz]e|divide|separate) (?:these|them|those|"
            r"the following|each|all|the)\b[^.?!\n]{0,40}\binto\b",
            r"\bfrom (?:this|these|the following|the text|the email|the article|the document|the page|"
            r"below)\b",
            # "I need name, current title, years of experience and skills"
            r"\b(?:needs?|wants?|give me|get me|return|extract|pull|with keys|with fields):? (?:the |their |"
            r"his |her )?\w+(?: \w+){0,2}, \w+(?: \w+){0,3}, (?:\w+(?: \w+){0,3}, )*(?:and )?\w+",
            r"\b(?:welche|quels?|quelles?|cu[aá]les) [^.?!\n]{0,40}\b(?:stehen|figurent|aparecen)\b",
        ),
        Cue(2.5, "json only|only json|output json|valid json|json object|json array|strict json"),
        Cue(
            1.0,
            "structured|entities|named entity|named entities|personal data|pii|action items|invoice|receipt|"
            "resume|cv|log lines|logs|purchase order|transactions|bank statement|contact details",
        ),
    ],
    TaskType.TRANSLATION: [
        Cue(
            4.0,
            "przetłumacz|przetłumaczyć|käännä|翻译|翻訳|번역|dịch sang|अनुवाद",
            r"\b(?:translat|traduc|tradu[iz]|übersetz|traduis|tradurre|traduz|vertaal|översätt|overs[æe]t|"
            r"çevir|перевед|перевод|переклад|перевест)|ترجم",
        ),
        Cue(
            3.0,
            _combine(
                "that in|that into|this in|this into|it in|it into|these in|them in|the same in", LANGUAGES
            ),
            _combine(LANGUAGES, "version|versions"),
        ),
        Cue(
            1.8,
            _combine("in|into|to", LANGUAGES),
            _combine(
                "in natural|into natural|in proper|into proper|in simple|into simple|in good", LANGUAGES
            ),
            _combine(LANGUAGES, "word for|version of"),
            _combine(
                "european|brazilian|latin american|mexican|castilian|simplified|traditional|canadian|swiss",
                LANGUAGES,
            ),
            rf"^\W*(?:{LANGUAGES}) for\b",
            _combine(LANGUAGES, "please|pls|translation|equivalent"),
            _combine("en|al|auf|ins|in|in het|na|på|a|ao|naar|nach|vers|sang|на", FOREIGN_LANGUAGE_NAMES),
            "how do you say|how would you say|how can you say|how do i say|how would a native speaker say|"
            "how do people say|betekent|betyder|bedeutet|significa|veut dire|означает|英語|英文|英语|영어로|"
            "日本語に|中文",
            r"\bwhat(?:'s| is| does) [^?\n]{1,60} (?:mean )?in (?:english|french|german|spanish|italian|"
            r"japanese|chinese|korean|greek|russian|portuguese)\b",
        ),
        Cue(
            2.5,
            "localise|localize|localised|localized|localisation|localization|l10n|render this in|"
            "render it in|say this in|say it in",
            r"\bfor (?:the )?(?:french|german|spanish|japanese|brazilian|mexican|chinese|italian|korean|"
            r"dutch|polish|turkish|arabic) (?:market|audience|customers|users|readers)\b",
            # "for pt-BR", "for es_MX": the code and separator spelled out, so the filter can look for them.
            rf"\bfor (?:{LOCALE_PREFIXES})[a-z]{{2}}\b",
        ),
        Cue(0.8, FOREIGN_LANGUAGE_NAMES),
    ],
    TaskType.CREATIVE: [
        Cue(
            3.0,
            r"\b(?:write|compose|draft|create|make|give me|come up with|invent|craft|pen|need|want|"
            r"tell me)\b[^.?!\n]{0,50}\b(?:poems?|haikus?|sonnets?|limericks?|lyrics|songs?|verses?|chorus|"
            r"rap|ballad|stor(?:y|ies)|fables?|fairy ?tales?|screenplay|monologue|dialogue|scenes?|speech|"
            r"toast|jingle|slogans?|taglines?|catchphrase|riddle|joke|puns?|backstory|chapter|novel|sketch|"
            r"(?:linkedin|blog|instagram|facebook|social media) post|post announcing|ad (?:copy|variants?)|"
            r"ads|copy for|product description|newsletter|invitation|greeting card|card message|caption|bio|"
            r"eulogy|vows|flash fiction|fan ?fiction|brand names?|names? for|titles? for|lore|legend|myth|"
            r"prophecy|flavou?r text|quest)\b",
        ),
        Cue(
            2.2,
            r"\b(?:poem|poet|lyric|sonnet|haik|haïk|limerick|slogan|tagline|copywrit|screenplay|"
            r"storytell)\w*",
            "poem|poetry|haiku|haïku|sonnet|limerick|lyrics|song|short story|bedtime story|fairy tale|fable|"
            "screenplay|monologue|dialogue between|verse|rap|ballad|slogan|slogans|tagline|taglines|jingle|"
            "catchphrase|marketing copy|ad copy|product description|worldbuilding|magic system|fictional|"
            "backstory|lore|flavour text|flavor text|mythology|flash fiction|fan fiction|fanfiction|"
            "best man speech|wedding speech|toast|greeting card|birthday card|brand name|brand names|"
            "names for a|names for an|names for my|names for our|names for the|name for a|name for my|"
            "title ideas|tagline ideas|slogan ideas|npc|game master|dungeon master|roleplay|role play|"
            "interactive story|interactive fiction|poème|poèmes|poeme|poema|poesía|poesia|gedicht|gedichte|"
            "cuento|histoire|geschichte|märchen|eslogan|lied|canción|chanson|filastrocca|стих|стихи|"
            "стихотворение|рассказ|сказка|сказку|reim|reime|erzählung|witz|werbetext|conte|blague|racconto|"
            "poesia|storia|favola|barzelletta|canzone|historia|chiste|relato|conto|piada|verhaal|wiersz|"
            "opowiadanie|шутка|анекдот|песня|couplet|knock knock|out of office|hero text|landing page copy|"
            "headline|headlines|page copy|product copy|web copy|website copy|sales copy|caption|captions|"
            "name ideas|naming ideas|name suggestions|copywriter|continue the story|continue the scene|"
            "continue the poem|continue the chapter|next chapter|podcast intro|intro script|video script|"
            "script for a podcast|script for a video|script for an ad|voiceover|写一首|詩|诗|小説|物語|故事",
        ),
        Cue(
            1.6,
            "story|joke|pun|character|plot|imagine|villain|hero|dragon|wizard|once upon a time|"
            "in the style of|as if it were|as if it was|as if he were|as if she were|as if they were|parody|"
            "brainstorm|invent|inventa|catchy|funny|witty|whimsical|rhyme|rhyming|epic|spooky|heartfelt|"
            "playful|cheeky|sarcastic|humble|not cringey|poetic|literary|motivational|romantic|darker|"
            "sadder|happier|make the ending|make the story|make it funnier|add a twist|add a plot twist|"
            "what do we see|what do i see|what do we hear|what do we find",
            r"^\W*i (?:open|draw|cast|attack|enter|search|offer|sneak|pick up|look around)\b",
        ),
    ],
}

# Frequent function words per language: a document in another language than the ask is likely to be
# translated. Scripts are told apart by their characters.
LANGUAGE_WORDS = {
    "en": "the and is are was were you your this that with for not have what how will would",
    "de": "der die das und ist nicht ich sie wir ein eine mit auf für den dem sich auch wird bitte",
    "fr": "le la les et est une des du pas je vous nous pour que qui dans avec sur ce cette",
    "es": "el la los las y es una del que no por para con se lo como más pero está",
    "it": "il lo gli le e è una del che non per con sono della di un questo",
    "pt": "o os as e é um uma do da que não para com se em no na por você",
    "nl": "de het een en is niet ik je van voor met op dat die zijn",
    "sv": "och är det en att jag inte på för med som har vi",
    "pl": "i w nie na jest się z do że to jak",
    "tr": "ve bir bu da de için ile çok ne var",
}
LANGUAGE_WORDS = {language: _word_set(words) for language, words in LANGUAGE_WORDS.items()}
LETTER = re.compile(r"[^\W\d_]")
SCRIPTS = {
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "japanese": re.compile(r"[\u3040-\u30ff]"),
    "chinese": re.compile(r"[\u4e00-\u9fff]"),
    "korean": re.compile(r"[\uac00-\ud7af]"),
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "greek": re.compile(r"[\u0370-\u03ff]"),
    "hebrew": re.compile(r"[\u0590-\u05ff]"),
    "devanagari": re.compile(r"[\u0900-\u097f]"),
    "thai": re.compile(r"[\u0e00-\u0e7f]"),
}
# Words that make a user message a request rather than material for a task the system prompt sets.
REQUEST = re.compile(
    r"\b(?:you|your|please|pls|help me|i need|i want|i'd like|i would like|let's|tell me|give me|show me|"
    r"can i|how do i|how can i|should i|should we)\b|\?"
)
# Words that open a question or an instruction ("What's the ...", "Compare ...", "Inventa ..."): a
# message with a sentence starting with one is a request even without a question mark.
REQUEST_OPENERS = _word_set(
    "what what's how why which who when where is are can could would do does did should "
    "solve suggest compare outline summarize summarise translate write draft describe analyze analyse list "
    "give tell show explain find calculate compute prove derive evaluate simplify factor create make "
    "generate design plan recommend rewrite fix debug review convert extract classify tag label rate name "
    "invent brainstorm imagine compose turn put reply respond answer continue check correct improve shorten "
    "expand help consider decide choose pick estimate predict identify determine implement build refactor "
    "optimize optimise add remove return parse count sort group format proofread edit paraphrase lay walk "
    "spell break go inventa escribe escribir traduce resume explica calcula haz dame schreib schreibe "
    "übersetze fasse erkläre berechne nenne gib écris traduis résume explique calcule donne fais scrivi "
    "traduci riassumi spiega calcola escreva traduza resuma напиши переведи объясни посчитай"
)
QUESTION_OPENERS = _word_set("is are was were do does did what what's why who when where which will")
INTERJECTIONS = _word_set(
    "ok okay so now and then also great cool thanks hi hey hello yes no well alright hm hmm"
)
# An opening paragraph announcing that a text follows: "Here are some meeting notes."
ANNOUNCES_TEXT = re.compile(
    r"\b(?:here's|here is|here are|below is|below are|the following|i'm pasting|i am pasting|pasted below|"
    r"paste from|see below|attached is|attached are)\b"
)
# The ask points at a text it comes with.
DEICTIC = re.compile(
    r"\b(?:this|these|the following|below|above|attached|here's|here is|here are|the text|the article|"
    r"the email|the letter|the report|the thread|the transcript)\b|:\s*$"
)

# Earlier turns count fully only when the ask leans on them.
FOLLOW_UP = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|good|great|thanks|cool|nice|perfect|hm+|yes|no|love it|lovely)\b[,.!]*\s*)*(?:and|"
    r"now|also|then|same|another|again|more|shorter|longer|but|what about|how about|what if|do the same|"
    r"same for|make it|make them|try again|redo|next|one more|continue|keep going|go on|walk me through|y|"
    r"et|und|e)\b"
)
# "that", "the same", "make it shorter" point back at the last answer; "is it worth ..." does not.
ANAPHORA = re.compile(
    r"\b(?:that|this|them|those|these|the same|above|previous|earlier|instead)\b|"
    r"\b(?:make|translate|shorten|rewrite|redo|change|turn|fix|improve|expand|simplify|put|give|send|"
    r"summari[sz]e|explain|format|convert|try|continue|finish|check) it\b"
)
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
SENTENCE_END = re.compile(r"(?<=[.?!\u3002\uff1f\uff01])\s+")
# Quoted passages and code fences are material the ask is about, not the ask.
QUOTED = re.compile(
    r"```.*?(?:```|$)|`[^`\n]{1,500}`|\"[^\"\n]{16,2000}\"|“[^“”]{16,2000}”|«[^«»]{16,2000}»|"
    r"„[^„“]{16,2000}“|"
    # 'Single quotes', allowing the apostrophes of "I'm" and "don't" inside. The opening quote comes
    # before its "not after a word character" check, so that every alternative starts with a quote
    # character and the regex engine skips straight to those instead of trying at every position.
    r"'(?<!\w')(?:[^'\n]|(?<=\w)'(?=\w)){8,2000}'(?!\w)",
    re.DOTALL,
)
QUOTE_CHARS = ('"', "`", "“", "«", "„", "'")

CODE_FENCE = re.compile(r"```")
# Backtick first, then "not after another backtick": a pattern that starts with a character lets the
# regex engine skip straight to it (10x faster than trying the lookbehind at every position).
INLINE_CODE = re.compile(r"`(?<!``)[^`\n]{2,200}`(?!`)")
CODE_LINE = re.compile(
    r"^[ \t]*(?:def |class |import |from \S+ import|function |const |let |var |public |private |#include|"
    r"SELECT |INSERT |UPDATE |DELETE |CREATE TABLE|FROM \w|WHERE |(?:LEFT |INNER )?JOIN |GROUP BY|ORDER BY|"
    r"return\b|if \(|for \(|while \(|\}|\{$|<\w+[^>\n]*>$|(?:for|if|elif|else|while|with|try|except|"
    r"async def)\b[^\n]*:[ \t]*$|[\w.]+\([^\n]*\)[ \t]*$|\w+ = [\[{(\"'])|;[ \t]*$|=>",
    re.MULTILINE,
)
TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^[ \t]+at [\w.$]+\(|\b[A-Z]\w*(?:Error|Exception)\b", re.MULTILINE
)
# Every TRACEBACK match holds one of these: "Traceback (most ...", "at frame(", "...Error", "...Exception".
TRACEBACK_NEEDS = ("(", "Error", "Exception")
EQUATION = re.compile(r"(?:\d|\b[a-z]\b)\s*(?:[-+*/^=<>]|\*\*)\s*(?:\d|\b[a-z]\b|\()|\\[a-z]+\{|\$[^$\n]+\$")
# Every EQUATION match holds one of these (an operator, a LaTeX command, a $...$ formula).
EQUATION_CHARS = "-+*/^=<>\\$"
NUMBER = re.compile(
    r"(?<![\w.])\d+(?:[.,]\d+)*|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
    r"thirty|forty|fifty|hundred|thousand|twice|half|double|triple)\b"
)
# A question about quantities: with two or more numbers in the ask, it is a word problem.
QUANTITY_QUESTION = re.compile(
    r"\b(?:how (?:much|many|long|far|fast|old|tall|big|heavy)|what (?:time|speed|rate|size|percentage|"
    r"fraction|dimensions)|convert|what(?:'s| is) (?:it|that|this|they) worth|what will (?:it|that|"
    r"this) be worth|what(?:'s| is| are| was| will be) (?:the|my|our|their|his|her|its|a|"
    r"an) [\w ]{0,20}(?:probability|chance|average|total|area|volume|speed|rate|mean|median|payment|cost|"
    r"value|price|distance|length|height|weight|sum|ratio|percentage|interest|amount|number)|at what|"
    r"when will|how (?:long|many \w+) (?:until|before|will)|find|what are the chances|what is (?:that|"
    r"this) in|(?:more|less|fewer|bigger|larger|smaller|cheaper|faster) \w* ?than|wie (?:viele?|lange|weit|"
    r"alt)|cuant[oa]s?|cuánt[oa]s?|cu[aá]l es (?:la|el)|combien|quanto|quel est|сколько)\b"
)
UNIT = re.compile(
    r"\d\s?(?:%|°|km/h|mph|km\b|kg\b|cm\b|mm\b|m\b|m²|ml\b|l\b|g\b|lbs?\b|inch\w*|feet\b|foot\b|ft\b|"
    r"miles?\b|yards?\b|pounds?\b|ounces?\b|oz\b|stones?\b|hours?\b|minutes?\b|years?\b|months?\b|days?\b|"
    r"people\b|workers?\b|machines?\b|stunden\b|minuten\b|horas\b|minutos\b|heures\b|jahre\b|años\b|ans\b)|"
    r"[$€£]\s?\d"
)
# Knights and knaves, suspects, switches: several people's statements or hard constraints in one ask.
STATEMENT_VERBS = ("says", "said", "claims", "insists", "replies")
STATEMENT = re.compile(rf"\b(?:[A-Z][a-z]*|he|she) (?:{'|'.join(STATEMENT_VERBS)})\b")
LOGIC_CONSTRAINT = re.compile(
    r"\b(?:always|never|only|exactly|can't|cannot|doesn't|does not|isn't|unless|at most|at least|"
    r"without looking|is wrong|different|directly|next to|ahead of|behind|in front of|left of|right of|"
    r"between|taller than|shorter than|older than|younger than)\b"
)
NUMBERED_STEP = re.compile(r"^[ \t]*(?:\d+[.)]|[a-z][.)]|[-*•]|step \d+)[ \t]+\S", re.MULTILINE)
CONSTRAINT = re.compile(
    r"\b(must|should|make sure|ensure|without|at least|at most|no more than|under \d+|max(?:imum)? \d+|"
    r"\d+ (?:words|pages|characters|bullets|lines|seconds|minutes)|exactly|only|avoid|handle|edge cases?|"
    r"constraints?|requirements?|include|keep|don't|do not|also|then|configurable|respect|guarantee|support|"
    r"each|every|consider|end with)\b"
)
DEMANDING = re.compile(
    r"\b(prove|derive|design|architect\w*|optimi[sz]e|rigorous\w*|in depth|in detail|comprehensive|detailed|"
    r"thorough\w*|analy[sz]e|trade-?offs?|scal\w+|concurren\w+|distributed|edge cases?|formal\w*|"
    r"step[- ]by[- ]step|multi-step|complex|race conditions?|idempoten\w+|at-least-once|exactly-once|"
    r"backoff|migrat\w+|integration tests?|benchmark\w*|recommend\w*|weigh|strateg\w+|power|"
    r"confidence interval|significan\w+|without downtime|zero-downtime|constraints?|explain (?:each|"
    r"every))\b"
)
# Word-list patterns run on the lower-cased ask. Most asks hold none of the words they list, and the
# literal pass made for the cue patterns (_Text.met) tells so without scanning the text again.
FILTERED = {
    pattern: FilteredPattern(pattern.pattern, CUE_LITERALS)
    for pattern in (CONSTRAINT, DEMANDING, LOGIC_CONSTRAINT, QUANTITY_QUESTION)
}
TRIVIAL = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|okay|good (?:morning|night)|bonjour|hola|ciao|hallo)\b"
)
# A one-line factual lookup ("Who wrote ...?", "capital of Peru?") is about as easy as requests get.
LOOKUP = re.compile(
    r"^\s*(?:who|when|where|what(?:'s| is| was| are| does)?|which|how (?:do you say|many|long|old))\b"
)
# Base difficulty per task type: translating a line is easier than a proof.
TASK_BASE_COMPLEXITY = {
    TaskType.CHAT: 0.03,
    TaskType.CODE: 0.1,
    TaskType.MATH: 0.1,
    TaskType.REASONING: 0.1,
    TaskType.SUMMARIZATION: 0.05,
    TaskType.EXTRACTION: 0.05,
    TaskType.TRANSLATION: 0.02,
    TaskType.CREATIVE: 0.08,
}
# (weight, half-saturation point) per complexity signal. What is asked weighs most: a long ask with
# several requirements and demanding terms is hard; a long pasted document adds work, but less.
COMPLEXITY_WEIGHTS = {
    "ask_words": (0.50, 25),
    "document_words": (0.40, 200),
    "requirements": (0.20, 1.5),
    "demanding_terms": (0.35, 0.5),
    "code": (0.20, 0.5),
    "equations": (0.05, 2),
    "tools": (0.05, 2),
    "earlier_turns": (0.10, 3),
    "extra_questions": (0.03, 2),
    "images": (0.10, 1),
}
# A greeting scores 0 and a one-line lookup at most this.
LOOKUP_COMPLEXITY = 0.12
# Ties go to the more specific reading of the request.
TIE_ORDER = [
    TaskType.TRANSLATION,
    TaskType.SUMMARIZATION,
    TaskType.EXTRACTION,
    TaskType.CODE,
    TaskType.MATH,
    TaskType.REASONING,
    TaskType.CREATIVE,
    TaskType.CHAT,
]
IMAGE_PART_TYPES = {"image_url", "image", "input_image"}
JSON_RESPONSE_TYPES = {"json_object", "json_schema"}


@dataclass(frozen=True)
class RequestAnalysis:
    """What the selection engine knows about a request before looking at any model."""

    task_type: str
    task_type_source: str  # "given" or "detected"
    task_scores: dict[str, float]
    complexity: float
    required_capabilities: frozenset[str]
    features: dict[str, Any] = field(default_factory=dict)

    def explain(self) -> dict:
        return {
            "task_type": self.task_type,
            "task_type_source": self.task_type_source,
            "task_scores": self.task_scores,
            "complexity": self.complexity,
            "required_capabilities": sorted(self.required_capabilities),
            "features": self.features,
        }


@dataclass(frozen=True)
class _Parts:
    """The request as the classifier reads it: the ask, the material it came with, and the rest."""

    ask: _Text
    document: _Text
    system: _Text
    history: _Text
    follow_up: bool
    # The user message is only material (an email to translate, reviews to summarize): the system
    # prompt is the instruction.
    material_only: bool = False


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def analyze_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
    task_type: str | None = None,
) -> RequestAnalysis:
    """Classify the request and score its difficulty. A task type the caller names is trusted
    (the scores are still computed, so the explainer can show whether the detector agreed)."""
    messages = [m for m in messages if isinstance(m, Mapping)]
    user_turns = [m for m in messages if m.get("role") == "user"]
    last_user = user_turns[-1] if user_turns else None
    instruction = _scannable(message_text(last_user)) if last_user else ""
    ask, document = _split_ask(instruction)
    parts = _parts(messages, last_user, ask, document)
    # The ask as the classifier reads it, also when it reads only the system prompt (material_only).
    ask_text = _Text(ask) if parts.material_only else parts.ask
    structure = _structure(instruction, ask_text)
    scores = _task_scores(parts, instruction, ask, structure)
    best = max(TIE_ORDER, key=lambda t: scores[t])
    detected = best if best != TaskType.CHAT and scores[best] >= MIN_TASK_SCORE else TaskType.CHAT
    chosen = task_type or detected

    features = _features(messages, instruction, ask_text, ask, document, user_turns, tools, structure)
    capabilities = set()
    if tools:
        capabilities.add("tools")
    if features["images"]:
        capabilities.add("vision")
    if isinstance(response_format, Mapping) and response_format.get("type") in JSON_RESPONSE_TYPES:
        capabilities.add("json")
    features["detected_task_type"] = detected
    return RequestAnalysis(
        task_type=chosen,
        task_type_source="given" if task_type else "detected",
        task_scores={k: round(v, 2) for k, v in sorted(scores.items(), key=lambda kv: -kv[1]) if v > 0},
        complexity=_complexity(chosen, features),
        required_capabilities=frozenset(capabilities),
        features=features,
    )


def _scannable(text: str, head: int = SCAN_HEAD, tail: int = SCAN_TAIL) -> str:
    """The text the patterns look at: all of it, or a head and a tail when it is very long."""
    if len(text) > head + tail:
        text = text[:head] + "\n\n" + text[-tail:]
    return text.replace("\u2019", "'")


def _context(text: str) -> str:
    return _scannable(text, CONTEXT_HEAD, CONTEXT_TAIL)


def _words(text: str) -> int:
    """Words, counting two characters of Chinese or Japanese as one."""
    words = len(text.split())
    return words if text.isascii() else words + len(UNSPACED_SCRIPT.findall(text)) // 2


def _split_ask(text: str) -> tuple[str, str]:
    """(ask, document): the instruction in the last user message and the material it came with.

    One block of text is all ask, minus quoted passages and code. Otherwise the ask is a short opening
    paragraph ("Summarize this for my manager:"), a short closing one ("Summarize the above."), or both,
    and the paragraphs between are the document; when both ends are long, their first and last
    sentences stand in for the ask."""
    quoted: list[str] = []

    def lift(match: re.Match) -> str:
        quoted.append(match.group())
        return " "

    body = QUOTED.sub(lift, text) if any(q in text for q in QUOTE_CHARS) else text
    blocks = [b.strip() for b in PARAGRAPH_BREAK.split(body) if b.strip()]
    if blocks:
        # "Classify these as spam or not:\n1. ..." - a first line ending in a colon introduces a list.
        first, _, rest = blocks[0].partition("\n")
        if rest.strip() and first.rstrip().endswith((":", "?")) and _words(first) <= ASK_MAX_WORDS:
            blocks[0:1] = [first, rest]
    if blocks and _words(blocks[0]) > ASK_MAX_WORDS:
        # "Summarize this: <a long text on the same line>"
        colon = blocks[0].find(":", 0, 200)
        lead = blocks[0][:colon]
        if colon > 0 and _words(lead) <= 30 and not SENTENCE_END.search(lead):
            blocks[0:1] = [blocks[0][: colon + 1], blocks[0][colon + 1 :].strip()]
    if len(blocks) <= 1:
        return body, "\n".join(quoted)
    head, middle, tail = blocks[0], blocks[1:-1], blocks[-1]
    head_short = _words(head) <= ASK_MAX_WORDS
    if head_short and (head.endswith(":") or ANNOUNCES_TEXT.search(head.lower())):
        # "Here's my outline: ...", then perhaps "Write chapter one." after the text.
        if middle and _words(tail) <= ASK_MAX_WORDS and _is_request(tail.lower()):
            return f"{head}\n\n{tail}", "\n\n".join([*middle, *quoted])
        return head, "\n\n".join([*blocks[1:], *quoted])
    head_ask = head_short and not _looks_like_document(head)
    tail_ask = _words(tail) <= ASK_MAX_WORDS and not _looks_like_document(tail)
    ask: list[str] = []
    document = list(middle)
    if head_ask:
        ask.append(head)
    elif tail_ask:
        document.insert(0, head)
    else:
        first_sentence = SENTENCE_END.split(head[:2000], maxsplit=1)[0]
        ask.append(first_sentence)
        document.insert(0, head[len(first_sentence) :])
    if tail_ask:
        ask.append(tail)
    elif not head_ask:
        last_sentence = SENTENCE_END.split(tail[-600:])[-1]
        ask.append(last_sentence)
        document.append(tail[: len(tail) - len(last_sentence)])
    else:
        document.append(tail)
    return "\n\n".join(ask), "\n\n".join([*document, *quoted])


def _looks_like_document(block: str) -> bool:
    """Pasted material rather than words to the assistant: several lines (a list, a letterhead,
    a signature), or no words at all."""
    return block.count("\n") >= 2 or not re.search(r"[^\W\d_]{3}", block)


def _parts(messages: Sequence[Mapping[str, Any]], last_user, ask: str, document: str) -> _Parts:
    system = "\n".join(
        _context(message_text(m)) for m in messages if m.get("role") in ("system", "developer")
    )
    earlier = [m for m in messages if m is not last_user and m.get("role") not in ("system", "developer")]
    # Only the last few turns: older ones rarely decide what is asked now.
    history = "\n".join(_context(message_text(m)) for m in earlier[-4:])
    ask_text, system_text = _Text(ask), _Text(system)
    if (
        system
        and not document
        and _words(ask) >= 8
        and not _is_request(ask_text.raw)
        and _sets_given_text_task(system_text)
    ):
        return _Parts(
            ask=_Text(""),
            document=_Text(_context(ask)),
            system=system_text,
            history=_Text(history),
            follow_up=False,
            material_only=True,
        )
    follow_up = (
        bool(history)
        and _words(ask) <= 30
        and bool(
            FOLLOW_UP.match(ask_text.raw) or (ANAPHORA.search(ask_text.raw) and not _new_question(ask_text))
        )
        and not PERSONAL.matches(ask_text)
        and not (_words(ask) <= 10 and GRATITUDE.search(ask_text.raw) and "?" not in ask)
    )
    return _Parts(
        ask=ask_text,
        document=_Text(_context(document)),
        system=system_text,
        history=_Text(history),
        follow_up=follow_up,
    )


def _new_question(ask: _Text) -> bool:
    """A question of its own ("Is it still worth learning Latin these days?") rather than a request
    about the last answer ("can you make that shorter"), even if it says "these" or "that"."""
    words = [w for w in TOKEN.findall(ask.raw[:200]) if w not in INTERJECTIONS]
    return len(words) >= 6 and words[0] in QUESTION_OPENERS


def _sets_given_text_task(system: _Text) -> bool:
    """Whether a system prompt says what to do with whatever the user sends: summarize, extract,
    translate it."""
    return any(
        cue.weight >= 2.5 and cue.matches(system)
        for task in (TaskType.SUMMARIZATION, TaskType.EXTRACTION, TaskType.TRANSLATION)
        for cue in TASK_CUES[task]
    )


def _is_request(text: str) -> bool:
    """Whether a message asks for something: a question, words like "please" or "you", or a sentence
    opening (give or take an "ok, so") with a question word or an imperative."""
    # Openers first: most requests start with one, and they are cheaper to check than REQUEST, which
    # scans the whole text when it does not match.
    for sentence in SENTENCE_END.split(text[:2000]):
        words = [w for w in TOKEN.findall(sentence[:60]) if w not in INTERJECTIONS]
        if words and words[0] in REQUEST_OPENERS:
            return True
    return bool(REQUEST.search(text))


def _structure(instruction: str, ask: _Text) -> dict[str, int]:
    """Counts both the task scores and the complexity features use, taken once: code lines in the
    user message and equations in its ask."""
    return {
        "code_lines": len(CODE_LINE.findall(instruction)),
        "equations": _equations(ask.raw),
    }


def _task_scores(parts: _Parts, instruction: str, ask: str, structure: dict[str, int]) -> dict[str, float]:
    # Each cue counts once, at the weight of the most telling place it appears in.
    sources = [(parts.ask, 1.0, ASK_ONLY)]
    if parts.history:
        weight = FOLLOW_UP_WEIGHT if parts.follow_up else CONTEXT_WEIGHT
        sources.append((parts.history, weight, NOT_IN_DOCUMENT))
    if parts.system:
        sources.append((parts.system, 1.0 if parts.material_only else SYSTEM_WEIGHT, NOT_IN_DOCUMENT))
    if parts.document:
        sources.append((parts.document, DOCUMENT_WEIGHT, EVERYWHERE))
    sources.sort(key=lambda source: -source[1])
    sources = [source for source in sources if source[0]]  # an empty text matches no cue
    scores: dict[str, float] = {}
    for task, cues in TASK_CUES.items():
        score = 0.0
        for cue in cues:
            allowed = _SCOPE_SOURCES[cue.scope]
            for text, weight, kind in sources:
                if kind in allowed and cue.matches(text):
                    score += cue.weight * weight
                    break
        scores[str(task)] = score

    # Structure speaks too: code in the message, an equation or a word problem in the ask.
    code_lines = structure["code_lines"]
    if CODE_FENCE.search(instruction) or code_lines >= 3 or _has_traceback(instruction):
        scores[TaskType.CODE] += 2.0
    elif INLINE_CODE.search(instruction):
        scores[TaskType.CODE] += 1.0
    lowered = parts.ask.raw
    # The ask's equations; none when the user message is only material (the ask is then empty).
    equations = 0 if parts.material_only else structure["equations"]
    if equations >= 2 and code_lines < 3:
        scores[TaskType.MATH] += 1.0
    # A word problem: a question about quantities with numbers to work from. The question is looked
    # for first, as most asks lack every word it needs (FILTERED tells without a scan).
    if FILTERED[QUANTITY_QUESTION].search(lowered, parts.ask.met):
        units = len(UNIT.findall(lowered))
        if units >= 1 or _matches_at_least(NUMBER, lowered, 2):
            scores[TaskType.MATH] += 1.2 + 0.3 * min(units, 3)
    if any(verb in ask for verb in STATEMENT_VERBS) and len(STATEMENT.findall(ask)) >= 2:
        scores[TaskType.REASONING] += 1.5
    if _count(LOGIC_CONSTRAINT, parts.ask) >= 3 and "?" in ask:
        scores[TaskType.REASONING] += 1.0
    # A document in another language than the ask is most likely to be translated.
    if parts.document and parts.ask.language and parts.document.language not in (None, parts.ask.language):
        scores[TaskType.TRANSLATION] += 2.0
    # An ask that comes with a document is about that document; one without cannot be.
    if len(parts.document.words) >= 30:
        for task in (TaskType.SUMMARIZATION, TaskType.EXTRACTION, TaskType.TRANSLATION):
            if scores[task] > 0:
                scores[task] += 0.5
        # "What about this?" over a pasted text with no other cue: condensing it is the usual job.
        if max(scores.values()) < MIN_TASK_SCORE and DEICTIC.search(parts.ask.raw):
            scores[TaskType.SUMMARIZATION] = MIN_TASK_SCORE
    elif not (parts.document or parts.history or parts.system):
        scores[TaskType.SUMMARIZATION] *= NO_MATERIAL_FACTOR
        scores[TaskType.EXTRACTION] *= NO_MATERIAL_FACTOR
    return scores


def _equations(text: str) -> int:
    """len(EQUATION.findall(text)), without the scan (slow: it tries every position) in text with no
    operator."""
    if not any(char in text for char in EQUATION_CHARS):
        return 0
    return len(EQUATION.findall(text))


def _count(pattern: re.Pattern, text: _Text) -> int:
    """len(pattern.findall(text.raw)), without the scan when the text lacks what every match needs."""
    if not FILTERED[pattern].search(text.raw, text.met):
        return 0
    return len(pattern.findall(text.raw))


def _has_traceback(text: str) -> bool:
    """TRACEBACK.search, skipped (it scans slowly) when the text lacks a string every match holds."""
    return any(needed in text for needed in TRACEBACK_NEEDS) and bool(TRACEBACK.search(text))


def _matches_at_least(pattern: re.Pattern, text: str, count: int) -> bool:
    """Whether `pattern` matches `text` `count` times or more: stops looking once it has."""
    return len(list(itertools.islice(pattern.finditer(text), count))) >= count


def _language(text: _Text) -> str | None:
    sample = text.raw[:2000]
    if not sample.isascii():
        letters = len(LETTER.findall(sample))
        for script, pattern in SCRIPTS.items():
            if len(pattern.findall(sample)) >= max(letters // 4, 2):
                return script
    hits = sorted(
        ((len(words & text.words), language) for language, words in LANGUAGE_WORDS.items()), reverse=True
    )
    (best, language), (second, _) = hits[0], hits[1]
    return language if best >= 3 and best > second else None


def _features(
    messages: Sequence[Mapping[str, Any]],
    instruction: str,
    ask_text: _Text,
    ask: str,
    document: str,
    user_turns: list,
    tools: Sequence[Mapping[str, Any]] | None,
    structure: dict[str, int],
) -> dict[str, Any]:
    total_chars = sum(len(message_text(m)) for m in messages)
    lowered = ask_text.raw
    return {
        "instruction_words": _words(instruction),
        "ask_words": _words(ask),
        "document_words": _words(document),
        "total_chars": total_chars,
        "turns": len(user_turns),
        "code_blocks": len(CODE_FENCE.findall(instruction)) // 2,
        "code_lines": structure["code_lines"],
        "equations": structure["equations"],
        "steps": len(NUMBERED_STEP.findall(lowered)),
        "constraints": _count(CONSTRAINT, ask_text),
        "demanding_terms": _count(DEMANDING, ask_text),
        "questions": ask.count("?"),
        "sentences": len(SENTENCE_END.findall(ask.strip())) + 1 if ask.strip() else 0,
        "list_items": ask.count(",") + ask.count(";"),
        "trivial": bool(TRIVIAL.match(lowered)) and _words(instruction) <= 8,
        "lookup": bool(LOOKUP.match(lowered)) and _words(instruction) <= 12 and not document,
        "tools": len(tools or ()),
        "images": sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if isinstance(part, Mapping) and part.get("type") in IMAGE_PART_TYPES
        ),
    }


def _saturating(value: float, half: float) -> float:
    """0 at 0, 0.5 at `half`, approaching 1: more of a signal helps less and less."""
    return value / (value + half) if value > 0 else 0.0


def _complexity(task_type: str, features: dict[str, Any]) -> float:
    """A weighted sum of saturating signals, 0..1: a greeting scores 0, a one-line question under 0.15,
    a long multi-constraint design task with code 0.7 and more."""
    if features["trivial"]:
        return 0.0
    signals = {
        # The first few words of any ask are free: "Write a haiku about Mondays" is not hard.
        "ask_words": max(features["ask_words"] - 8, 0),
        "document_words": features["document_words"],
        "requirements": features["steps"]
        + (features["constraints"] + max(features["sentences"] - 1, 0) + features["list_items"] / 2) / 2,
        "demanding_terms": features["demanding_terms"],
        "code": features["code_blocks"] + features["code_lines"] / 10,
        "equations": features["equations"],
        "tools": features["tools"],
        "earlier_turns": max(features["turns"] - 1, 0),
        "extra_questions": max(features["questions"] - 1, 0),
        "images": features["images"],
    }
    score = TASK_BASE_COMPLEXITY.get(task_type, 0.05) + sum(
        weight * _saturating(signals[name], half) for name, (weight, half) in COMPLEXITY_WEIGHTS.items()
    )
    if features["lookup"] and task_type == TaskType.CHAT:
        score = min(score, LOOKUP_COMPLEXITY)
    return round(min(max(score, 0.0), 1.0), 3)
