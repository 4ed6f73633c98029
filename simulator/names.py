"""Vocabulary of the simulated world: genres (TMDB ids), occupations, title words, languages."""

GENRES: list[tuple[int, str]] = [
    (28, "Action"),
    (12, "Adventure"),
    (16, "Animation"),
    (35, "Comedy"),
    (80, "Crime"),
    (99, "Documentary"),
    (18, "Drama"),
    (10751, "Family"),
    (14, "Fantasy"),
    (36, "History"),
    (27, "Horror"),
    (10402, "Music"),
    (9648, "Mystery"),
    (10749, "Romance"),
    (878, "Science Fiction"),
    (10770, "TV Movie"),
    (53, "Thriller"),
    (10752, "War"),
    (37, "Western"),
]

# Relative frequency of each genre in the catalog (same order as GENRES).
GENRE_WEIGHTS = [9, 5, 3, 12, 6, 3, 16, 4, 4, 2, 5, 2, 3, 6, 4, 1, 8, 2, 1]

OCCUPATIONS = [
    "college/grad student",
    "other or not specified",
    "executive/managerial",
    "academic/educator",
    "technician/engineer",
    "writer",
    "K-12 student",
    "self-employed",
    "sales/marketing",
    "clerical/admin",
    "doctor/health care",
    "programmer",
    "lawyer",
    "homemaker",
    "unemployed",
    "retired",
    "customer service",
    "scientist",
    "artist",
    "farmer",
    "tradesman/craftsman",
]
OCCUPATION_WEIGHTS = [14, 12, 8, 6, 8, 3, 7, 4, 5, 4, 3, 6, 2, 2, 2, 4, 3, 2, 3, 1, 2]

LANGUAGES = ["en", "fr", "es", "de", "ja", "ko", "it", "hi", "zh", "ru", "sv", "pt"]
LANGUAGE_WEIGHTS = [70, 5, 5, 3, 4, 3, 3, 2, 2, 1, 1, 1]

ADJECTIVES = """
silent dark last lost hidden broken golden crimson frozen burning secret wild quiet endless
little great black white red blue green midnight eternal distant forgotten savage gentle
iron glass paper electric hollow bright lonely sudden strange final first dangerous perfect
sweet bitter deep high long short cold warm brave fallen rising shattered velvet wicked
"""
NOUNS = """
river city night heart shadow storm garden road kingdom dream mirror island house summer winter
star ocean forest mountain letter promise game war family secret voice fire rain wind sky
moon sun stranger detective queen king soldier thief ghost angel machine planet empire circus
journey bridge station window door horizon harbor frontier valley desert canyon train ship
wolf tiger dragon raven lion hunter witness doctor teacher artist pilot sister brother father
mother daughter son friend lover enemy hero legend memory truth lie silence echo signal code
"""
NOUNS_PLURAL_SUFFIX = "s"

ADJECTIVE_WORDS = ADJECTIVES.split()
NOUN_WORDS = NOUNS.split()
