"""Word lists the text edits use (``fadejax.audits.text.edits``), written for this project.

All keys are lower case. Lists are tuples (never sets) so that every random choice made
from them is in a fixed order, whatever the process's string-hash seed.
"""

from __future__ import annotations

# Common English misspellings: correct word -> misspellings people actually write.
# Weighted toward everyday words, since the audited texts are short informal summaries.
MISSPELLINGS: dict[str, tuple[str, ...]] = {
    "the": ("teh", "th"),
    "and": ("adn", "nad"),
    "that": ("taht", "tht"),
    "with": ("wiht", "whit"),
    "they": ("tehy", "thay"),
    "their": ("thier", "there"),
    "there": ("their", "ther"),
    "they're": ("their", "there"),
    "your": ("you're", "yuor"),
    "you're": ("your", "youre"),
    "it's": ("its",),
    "its": ("it's",),
    "then": ("than",),
    "than": ("then",),
    "because": ("becuase", "becasue", "beacuse"),
    "really": ("realy", "relly"),
    "which": ("wich", "whcih"),
    "would": ("woudl", "wold"),
    "could": ("coudl", "culd"),
    "should": ("shoudl", "shuold"),
    "friend": ("freind", "frend"),
    "friends": ("freinds", "frends"),
    "girlfriend": ("girlfreind", "gf"),
    "boyfriend": ("boyfreind", "bf"),
    "believe": ("beleive", "belive"),
    "receive": ("recieve", "recive"),
    "received": ("recieved", "recived"),
    "weird": ("wierd",),
    "definitely": ("definately", "definitly", "defiantly"),
    "separate": ("seperate",),
    "until": ("untill", "til"),
    "tomorrow": ("tommorow", "tomorow"),
    "beginning": ("begining",),
    "necessary": ("neccessary", "necessery"),
    "occurred": ("occured",),
    "occasion": ("ocassion", "occassion"),
    "government": ("goverment",),
    "environment": ("enviroment",),
    "embarrassed": ("embarassed", "embarrased"),
    "address": ("adress",),
    "across": ("accross",),
    "apparently": ("apparantly", "aparently"),
    "different": ("diffrent", "differnt"),
    "finally": ("finaly",),
    "forward": ("foward",),
    "happened": ("happend",),
    "immediately": ("immediatly", "imediately"),
    "interesting": ("intresting",),
    "knowledge": ("knowlege",),
    "probably": ("probly", "propably"),
    "surprise": ("suprise",),
    "truly": ("truely",),
    "already": ("allready", "alredy"),
    "always": ("allways",),
    "argument": ("arguement",),
    "basically": ("basicly",),
    "business": ("buisness",),
    "calendar": ("calender",),
    "college": ("collage",),
    "completely": ("completly",),
    "conscious": ("concious",),
    "decision": ("desicion",),
    "disappoint": ("dissapoint",),
    "disappointed": ("dissapointed",),
    "easily": ("easely",),
    "especially": ("especialy",),
    "existence": ("existance",),
    "experience": ("experiance",),
    "family": ("famliy",),
    "foreign": ("foriegn",),
    "grateful": ("greatful",),
    "guarantee": ("garantee",),
    "hopefully": ("hopefuly",),
    "independent": ("independant",),
    "knew": ("new",),
    "know": ("no",),
    "lose": ("loose",),
    "losing": ("loosing",),
    "maybe": ("mabye",),
    "month": ("moth",),
    "noticeable": ("noticable",),
    "obviously": ("obviosly",),
    "occasionally": ("occasionaly",),
    "parents": ("parnets",),
    "people": ("poeple", "peopel"),
    "personally": ("personaly",),
    "possession": ("posession",),
    "pretty": ("prety",),
    "recommend": ("reccomend", "recomend"),
    "relationship": ("relationshp", "realtionship"),
    "restaurant": ("restaraunt",),
    "schedule": ("schedual",),
    "sense": ("sence",),
    "since": ("sence", "sinse"),
    "something": ("somthing",),
    "success": ("sucess",),
    "though": ("tho", "thogh"),
    "through": ("thru", "throught"),
    "together": ("togather",),
    "tried": ("tryed",),
    "unfortunately": ("unfortunatly",),
    "usually": ("usualy",),
    "went": ("whent",),
    "were": ("where",),
    "where": ("were",),
    "whether": ("wether",),
    "without": ("withought",),
    "writing": ("writting",),
}

VOWELS = "aeiou"

# QWERTY neighbours: same row left/right, the two keys above and the two below
# (rows are staggered, so key c on row r touches c and c+1 above, c-1 and c below).
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _qwerty_neighbours() -> dict[str, str]:
    where = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    out: dict[str, str] = {}
    for ch, (r, c) in where.items():
        spots = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
        out[ch] = "".join(_ROWS[rr][cc] for rr, cc in spots if 0 <= rr < len(_ROWS) and 0 <= cc < len(_ROWS[rr]))
    return out


QWERTY_NEIGHBOURS: dict[str, str] = _qwerty_neighbours()

# Auxiliaries after which "not" can go.
AUXILIARIES: tuple[str, ...] = (
    "am", "is", "are", "was", "were", "has", "have", "had", "do", "does", "did",
    "can", "could", "will", "would", "shall", "should", "may", "might", "must",
)
MODALS: tuple[str, ...] = ("can", "could", "will", "would", "shall", "should", "may", "might", "must")

# Negative contractions -> the auxiliary without the negation (apostrophes normalised to ').
NEGATIVE_CONTRACTIONS: dict[str, str] = {
    "isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "hasn't": "has",
    "haven't": "have", "hadn't": "had", "don't": "do", "doesn't": "does", "didn't": "did",
    "can't": "can", "cannot": "can", "couldn't": "could", "won't": "will", "wouldn't": "would",
    "shan't": "shall", "shouldn't": "should", "mightn't": "might", "mustn't": "must",
}

# Present <-> past of be/have/do. Past -> present depends on the subject: (I, plural, singular).
AUX_TO_PAST: dict[str, str] = {"am": "was", "is": "was", "are": "were", "has": "had", "have": "had", "does": "did", "do": "did"}
AUX_TO_PRESENT: dict[str, tuple[str, str, str]] = {
    "was": ("am", "are", "is"),
    "were": ("are", "are", "is"),
    "had": ("have", "have", "has"),
    "did": ("do", "do", "does"),
}

DETERMINERS: tuple[str, ...] = (
    "a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our",
    "their", "some", "any", "every", "each", "no", "another", "either", "neither", "several",
    "many", "few", "much", "more", "most", "all", "both", "such", "whose",
)
SUBJECT_PRONOUNS: tuple[str, ...] = ("i", "you", "he", "she", "it", "we", "they")
PLURAL_PRONOUNS: tuple[str, ...] = ("you", "we", "they")
# A past form right after these is a participle ("has walked", "was used"), not a past tense.
PARTICIPLE_CUES: tuple[str, ...] = (
    "have", "has", "had", "having", "be", "been", "being", "is", "are", "was", "were", "am",
    "get", "gets", "got", "gotten",
)

# Where one clause of a sentence meets the next: comma or coordinating/subordinating word.
CLAUSE_JOINERS: tuple[str, ...] = ("and", "but", "or", "so", "yet", "because", "while", "whereas", "although")

# English stop words: the Glasgow Information Retrieval Group list, exactly as scikit-learn ships it
# (sklearn.feature_extraction.text.ENGLISH_STOP_WORDS; tests/test_text_edits.py checks they agree).
# Kept here because importing scikit-learn costs seconds in every worker process.
STOP_WORDS: frozenset[str] = frozenset((
    "a", "about", "above", "across", "after", "afterwards", "again", "against", "all", "almost",
    "alone", "along", "already", "also", "although", "always", "am", "among", "amongst",
    "amoungst", "amount", "an", "and", "another", "any", "anyhow", "anyone", "anything",
    "anyway", "anywhere", "are", "around", "as", "at", "back", "be", "became", "because",
    "become", "becomes", "becoming", "been", "before", "beforehand", "behind", "being", "below",
    "beside", "besides", "between", "beyond", "bill", "both", "bottom", "but", "by", "call",
    "can", "cannot", "cant", "co", "con", "could", "couldnt", "cry", "de", "describe", "detail",
    "do", "done", "down", "due", "during", "each", "eg", "eight", "either", "eleven", "else",
    "elsewhere", "empty", "enough", "etc", "even", "ever", "every", "everyone", "everything",
    "everywhere", "except", "few", "fifteen", "fifty", "fill", "find", "fire", "first", "five",
    "for", "former", "formerly", "forty", "found", "four", "from", "front", "full", "further",
    "get", "give", "go", "had", "has", "hasnt", "have", "he", "hence", "her", "here",
    "hereafter", "hereby", "herein", "hereupon", "hers", "herself", "him", "himself", "his",
    "how", "however", "hundred", "i", "ie", "if", "in", "inc", "indeed", "interest", "into",
    "is", "it", "its", "itself", "keep", "last", "latter", "latterly", "least", "less", "ltd",
    "made", "many", "may", "me", "meanwhile", "might", "mill", "mine", "more", "moreover",
    "most", "mostly", "move", "much", "must", "my", "myself", "name", "namely", "neither",
    "never", "nevertheless", "next", "nine", "no", "nobody", "none", "noone", "nor", "not",
    "nothing", "now", "nowhere", "of", "off", "often", "on", "once", "one", "only", "onto",
    "or", "other", "others", "otherwise", "our", "ours", "ourselves", "out", "over", "own",
    "part", "per", "perhaps", "please", "put", "rather", "re", "same", "see", "seem", "seemed",
    "seeming", "seems", "serious", "several", "she", "should", "show", "side", "since",
    "sincere", "six", "sixty", "so", "some", "somehow", "someone", "something", "sometime",
    "sometimes", "somewhere", "still", "such", "system", "take", "ten", "than", "that", "the",
    "their", "them", "themselves", "then", "thence", "there", "thereafter", "thereby",
    "therefore", "therein", "thereupon", "these", "they", "thick", "thin", "third", "this",
    "those", "though", "three", "through", "throughout", "thru", "thus", "to", "together",
    "too", "top", "toward", "towards", "twelve", "twenty", "two", "un", "under", "until", "up",
    "upon", "us", "very", "via", "was", "we", "well", "were", "what", "whatever", "when",
    "whence", "whenever", "where", "whereafter", "whereas", "whereby", "wherein", "whereupon",
    "wherever", "whether", "which", "while", "whither", "who", "whoever", "whole", "whom",
    "whose", "why", "will", "with", "within", "without", "would", "yet", "you", "your", "yours",
    "yourself", "yourselves",
))
