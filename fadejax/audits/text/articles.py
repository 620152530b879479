"""A seeded generator of short news-style articles with one-sentence reference summaries.

This is the project's own small summarization data set: enough pairs to train the demo's
tiny summarizer from scratch on a CPU, and a held-out split to audit it on. Each article
is 3-5 sentences on one of seven topics (city council votes, sports results, weather,
company earnings, science findings, fires, school boards); names, places and numbers
are drawn from the lists below. The reference summary is one short sentence that
carries the article's key facts; the other sentences add distractor facts (other names
and numbers) a summarizer must learn to leave out.

Splits: an article belongs to ``held_out`` if and only if a stable hash of its *summary*
(i.e. of its key facts) falls in one fifth of the hash range, so no held-out article,
and no held-out combination of key facts, ever appears in ``train``. Both splits share
the entity lists, so a word-level vocabulary built on ``train`` covers ``held_out``.

Text uses only words, integers, commas and full stops (no apostrophes, hyphens or
symbols), so a word-level tokenizer decodes it back exactly.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Literal

Split = Literal["train", "held_out"]

#: default number of articles per split
DEFAULT_SIZES: dict[str, int] = {"train": 6000, "held_out": 500}
HELD_OUT_BUCKETS = 5  # one bucket of five goes to held_out

CITIES = [
    "Ashford", "Bramley", "Carlow", "Dunmore", "Elmwood", "Fairhaven", "Glenrock", "Harwick",
    "Ironton", "Jasper", "Kingsley", "Lakeview", "Millbrook", "Northgate", "Oakridge", "Pinehurst",
    "Quarryville", "Redmond", "Stanton", "Thornbury", "Upton", "Valemont", "Westbury", "Yardley",
    "Alder", "Brookfield", "Cedarville", "Denholm", "Easton", "Foxley", "Granville", "Hollis",
    "Kenmore", "Linden", "Marlow", "Newhall", "Oxley", "Preston", "Riverton", "Summerfield",
]
FIRST_NAMES = [
    "Anna", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Henry", "Irene", "James",
    "Karen", "Luis", "Maria", "Nathan", "Olivia", "Peter", "Rosa", "Samuel", "Teresa", "Victor",
    "Wendy", "Adam", "Bianca", "Colin", "Diana", "Ethan", "Fiona", "George", "Hannah", "Ivan",
]
LAST_NAMES = [
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tanaka",
    "Underwood", "Varga", "Walsh", "Young", "Zhang", "Becker", "Costa", "Dubois", "Ferreira", "Kim",
]
MASCOTS = [
    "Falcons", "Rangers", "Tigers", "Comets", "Wolves", "Pirates", "Hornets", "Bears",
    "Eagles", "Miners", "Sharks", "Knights", "Rockets", "Bulldogs", "Owls", "Mustangs",
]
PROJECTS = [
    "a new library", "a bus depot", "a water treatment plant", "new bike lanes", "a public pool",
    "a community center", "road repairs", "a new fire station", "a downtown park", "school buses",
    "a senior center", "flood barriers", "street lighting", "a youth sports complex", "a recycling plant",
]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
STORMS = ["storm", "blizzard", "snowstorm", "thunderstorm", "tropical storm", "hailstorm"]
COMPANY_HEADS = [
    "Norland", "Veltrix", "Arbor", "Castell", "Dynamo", "Everline", "Fulcrum", "Granite", "Helix",
    "Ionic", "Juniper", "Keystone", "Lumen", "Meridian", "Nimbus", "Orion", "Pioneer", "Quantum",
]
COMPANY_KINDS = ["Foods", "Motors", "Systems", "Energy", "Pharma", "Airlines", "Bank", "Robotics", "Media", "Steel"]
PRODUCTS = [
    "electric trucks", "frozen meals", "cloud software", "solar panels", "allergy drugs", "budget flights",
    "home loans", "warehouse robots", "streaming service", "steel beams", "smart phones", "wind turbines",
]
CREATURES = [
    "honeybees", "octopuses", "crows", "dolphins", "tree frogs", "sea turtles", "bats", "ants",
    "goldfish", "parrots", "squirrels", "wolves", "salmon", "pigeons", "lizards", "bumblebees",
]
ABILITIES = [
    "recognize human faces", "count to five", "sleep with one eye open", "use simple tools",
    "remember routes for years", "sense magnetic fields", "learn by watching others",
    "tell colors apart at night", "plan several steps ahead", "find food by smell alone",
]
JOURNALS = ["Nature", "Science", "Current Biology", "Animal Behaviour", "Ecology Letters", "Biology Letters"]
BUILDINGS = [
    "warehouse", "apartment building", "restaurant", "church", "factory", "school gym",
    "hardware store", "hotel", "bakery", "garage", "office building", "barn",
]
STREETS = ["Main", "Oak", "Elm", "Maple", "Park", "Mill", "River", "Church", "High", "Station", "Market", "Bridge"]
SUBJECTS = ["math", "reading", "science", "music", "history", "art"]


def _name(r: random.Random) -> str:
    return f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}"


def _two_cities(r: random.Random) -> tuple[str, str]:
    a, b = r.sample(CITIES, 2)
    return a, b


def _assemble(r: random.Random, lead: list[str], body: list[str], summary: str) -> tuple[str, str]:
    """One lead sentence, then 2-4 body sentences in random order: a 3-5 sentence article."""
    k = r.randint(2, min(4, len(body)))
    sentences = [r.choice(lead)] + r.sample(body, k)
    return " ".join(sentences), summary


def _council(r: random.Random) -> tuple[str, str]:
    city, project, other = r.choice(CITIES), *r.sample(PROJECTS, 2)
    yes = r.randint(5, 9)
    no = r.randint(0, yes - 1)
    amount, day, mayor, member = r.randint(2, 90), r.choice(DAYS), _name(r), _name(r)
    lead = [
        f"The {city} city council voted {yes} to {no} on {day} to approve {amount} million dollars for {project}.",
        f"On {day}, the {city} city council approved {amount} million dollars for {project} in a {yes} to {no} vote.",
        f"Members of the {city} city council voted {yes} to {no} on {day} to spend {amount} million dollars on {project}.",
    ]
    body = [
        f"Mayor {mayor} said the project would create {r.randint(20, 300)} jobs over the next {r.randint(2, 9)} years.",
        f"Council member {member} voted against the plan, saying the money should go to {other} instead.",
        f"Work is expected to begin in {r.choice(MONTHS)} and last about {r.randint(6, 30)} months.",
        f"About {r.randint(15, 90)} residents spoke during a public comment period that lasted {r.randint(2, 5)} hours.",
        f"The money will come from a bond approved by voters {r.randint(2, 8)} years ago.",
    ]
    return _assemble(r, lead, body, f"{city} council approves {amount} million dollars for {project} in {yes} to {no} vote.")


def _sports(r: random.Random) -> tuple[str, str]:
    (c1, c2), (m1, m2) = _two_cities(r), r.sample(MASCOTS, 2)
    s1 = r.randint(60, 120)
    s2 = r.randint(50, s1 - 1)
    player, rival = _name(r), _name(r)
    pts, day = r.randint(18, 45), r.choice(DAYS)
    lead = [
        f"{player} scored {pts} points as the {c1} {m1} beat the {c2} {m2} {s1} to {s2} on {day} night.",
        f"The {c1} {m1} beat the {c2} {m2} {s1} to {s2} on {day}, led by {pts} points from {player}.",
        f"Behind {pts} points from {player}, the {c1} {m1} defeated the {c2} {m2} {s1} to {s2} on {day}.",
    ]
    body = [
        f"{rival} led the {m2} with {r.randint(10, 30)} points in the loss.",
        f"A crowd of {r.randint(3, 19)} thousand fans watched the game at {c1} Arena.",
        f"The {m1} have now won {r.randint(2, 9)} games in a row and moved into {r.choice(['first', 'second', 'third'])} place.",
        f"The {m2} have now lost {r.randint(2, 7)} of their last {r.randint(8, 10)} games.",
        f"The two teams meet again in {c2} on {r.choice(DAYS)}.",
    ]
    return _assemble(r, lead, body, f"{c1} {m1} beat {c2} {m2} {s1} to {s2} behind {pts} points from {player}.")


def _weather(r: random.Random) -> tuple[str, str]:
    city, storm, day = r.choice(CITIES), r.choice(STORMS), r.choice(DAYS)
    snowy = storm in ("blizzard", "snowstorm")
    what = "snow" if snowy else ("hail" if storm == "hailstorm" else "rain")
    inches, outages = r.randint(2, 30), r.randint(2, 90)
    lead = [
        f"A {storm} dropped {inches} inches of {what} on {city} on {day} and left {outages} thousand homes without power.",
        f"{city} was hit by a {storm} on {day} that brought {inches} inches of {what} and cut power to {outages} thousand homes.",
        f"About {outages} thousand homes in {city} lost power on {day} after a {storm} brought {inches} inches of {what}.",
    ]
    body = [
        f"Forecaster {_name(r)} said temperatures would fall to {r.randint(5, 40)} degrees by the weekend.",
        f"Schools in {r.choice(CITIES)} and {r.choice(CITIES)} closed for {r.randint(2, 4)} days.",
        f"Crews expect to restore power to most homes within {r.randint(2, 6)} days.",
        f"Police reported {r.randint(10, 80)} crashes on roads around the city.",
        f"It was the worst {storm} in the area in {r.randint(5, 40)} years.",
    ]
    return _assemble(r, lead, body, f"{storm.capitalize()} brings {inches} inches of {what} to {city} and leaves {outages} thousand homes without power.")


def _earnings(r: random.Random) -> tuple[str, str]:
    company = f"{r.choice(COMPANY_HEADS)} {r.choice(COMPANY_KINDS)}"
    quarter = r.choice(["first", "second", "third", "fourth"])
    profit, pct = r.randint(10, 300), r.randint(2, 60)
    direction = r.choice(["up", "down"])
    verb = "rose" if direction == "up" else "fell"
    ceo, product = _name(r), r.choice(PRODUCTS)
    lead = [
        f"{company} said on {r.choice(DAYS)} that its {quarter} quarter profit {verb} {pct} percent to {profit} million dollars.",
        f"{company} reported a {quarter} quarter profit of {profit} million dollars, which {verb} {pct} percent from a year ago.",
        f"Profit at {company} {verb} {pct} percent in the {quarter} quarter to {profit} million dollars, the company said.",
    ]
    body = [
        f"Chief executive {ceo} said sales of {product} were stronger than expected.",
        f"Revenue was {r.randint(1, 40)} billion dollars for the quarter.",
        f"The company plans to hire {50 * r.randint(2, 60)} workers next year.",
        f"Shares of the company {r.choice(['rose', 'fell'])} {r.randint(1, 15)} percent in early trading.",
        f"Analysts had expected a profit of {r.randint(10, 300)} million dollars.",
    ]
    return _assemble(r, lead, body, f"{company} {quarter} quarter profit {verb} {pct} percent to {profit} million dollars.")


def _science(r: random.Random) -> tuple[str, str]:
    city, creature, ability = r.choice(CITIES), r.choice(CREATURES), r.choice(ABILITIES)
    n, journal, lead_name = r.randint(20, 300), r.choice(JOURNALS), _name(r)
    lead = [
        f"Researchers at the University of {city} have found that {creature} can {ability}, according to a study of {n} animals.",
        f"A study of {n} animals by researchers at the University of {city} shows that {creature} can {ability}.",
        f"{creature.capitalize()} can {ability}, researchers at the University of {city} reported after studying {n} animals.",
    ]
    body = [
        f"The study, led by {lead_name}, was published this week in {journal}.",
        f"The team spent {r.randint(2, 9)} years on the work.",
        f"Other scientists said the results should be repeated with {r.choice(CREATURES)}.",
        f"The research was paid for by a grant of {r.randint(1, 9)} million dollars.",
        f"{lead_name} said the finding surprised the team.",
    ]
    return _assemble(r, lead, body, f"University of {city} study finds {creature} can {ability}.")


def _fire(r: random.Random) -> tuple[str, str]:
    city, building, street = r.choice(CITIES), r.choice(BUILDINGS), r.choice(STREETS)
    injured, day = r.randint(0, 12), r.choice(DAYS)
    hurt = "no one was hurt" if injured == 0 else f"{injured} people were hurt"
    short = "no one hurt" if injured == 0 else f"{injured} people hurt"
    lead = [
        f"A fire destroyed a {building} on {street} Street in {city} on {day}, and {hurt}.",
        f"Fire crews in {city} fought a blaze that destroyed a {building} on {street} Street on {day}, and {hurt}.",
        f"A {building} on {street} Street in {city} was destroyed by fire on {day}, and {hurt}.",
    ]
    body = [
        f"Fire chief {_name(r)} said {r.randint(20, 90)} firefighters worked for {r.randint(2, 9)} hours to put out the flames.",
        f"The cause of the fire is under investigation.",
        f"Neighbors said they saw smoke at about {r.randint(1, 11)} in the morning.",
        f"Damage was estimated at {r.randint(1, 9)} million dollars.",
        f"Nearby roads were closed for {r.randint(2, 8)} hours.",
    ]
    return _assemble(r, lead, body, f"Fire destroys {building} on {street} Street in {city}, {short}.")


def _school(r: random.Random) -> tuple[str, str]:
    city, name, old = r.choice(CITIES), _name(r), _name(r)
    salary, votes = r.randint(120, 290), r.randint(4, 9)
    lead = [
        f"The {city} school board voted {votes} to 0 to hire {name} as superintendent with a salary of {salary} thousand dollars.",
        f"{name} will be the next superintendent of {city} schools after a {votes} to 0 school board vote, with a salary of {salary} thousand dollars.",
        f"On {r.choice(DAYS)}, the {city} school board hired {name} as superintendent at a salary of {salary} thousand dollars.",
    ]
    body = [
        f"{name} replaces {old}, who retired in {r.choice(MONTHS)} after {r.randint(5, 20)} years.",
        f"The district serves about {r.randint(3, 60)} thousand students in {r.randint(8, 70)} schools.",
        f"Board member {_name(r)} said test scores in {r.choice(SUBJECTS)} must improve.",
        f"{name} starts the job in {r.choice(MONTHS)}.",
        f"The board interviewed {r.randint(3, 12)} candidates.",
    ]
    return _assemble(r, lead, body, f"{city} school board hires {name} as superintendent at {salary} thousand dollars.")


TOPICS: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _council, _sports, _weather, _earnings, _science, _fire, _school,
)


def split_of(summary: str) -> Split:
    """The split that an article with this reference summary belongs to (stable across runs)."""
    bucket = int.from_bytes(hashlib.sha256(summary.encode()).digest()[:4], "little") % HELD_OUT_BUCKETS
    return "held_out" if bucket == 0 else "train"


def generate(split: Split, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(articles, summaries)``: ``n`` distinct articles of ``split``, deterministic in ``seed``.

    Topics are drawn uniformly; candidates of the other split are skipped, as are repeats.
    """
    if split not in DEFAULT_SIZES:
        raise ValueError(f"split must be one of {sorted(DEFAULT_SIZES)}, got {split!r}")
    if n < 1:
        raise ValueError(f"n must be a positive number of articles, got {n}")
    r = random.Random(f"fadejax-articles/{split}/{seed}")
    articles: list[str] = []
    summaries: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(articles) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could not generate {n} distinct {split} articles; ask for fewer")
        article, summary = r.choice(TOPICS)(r)
        if split_of(summary) != split or article in seen:
            continue
        seen.add(article)
        articles.append(article)
        summaries.append(summary)
    return articles, summaries
